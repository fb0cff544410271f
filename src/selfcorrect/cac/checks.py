"""The `Check` protocol and the built-in checks: where the check ``c_t`` of an answer comes from.

A check has a `name` and one method, ``check(backend, conversations, round)``, returning one
`CheckResult` (the prompt asked, the check's text and its verdict) per conversation, in order.
The engine, not the check, appends the prompt as a user turn and the check as an assistant turn,
so the check stays in context for the next answer. Each built-in check owns its prompt and its
verdict parser (named constants below, overridable by argument):

- `SelfCheck`: the same model reviews its answer in natural language (the paper's default);
- `VerdictCheck`: the same model answers a yes/no question about its answer;
- `OracleCheck`: the verdict comes from the ground truth, flipped with probability `p`; the
  truth reaches it only through the `is_correct` function it is given;
- `ModelCheck`: another model reviews the answer;
- `OracleStopCheck`: another check reviews, and the ground truth only says when to stop
  (Huang et al.'s oracle-stopped setting).

`make_check` builds one from a spec (``self``, ``verdict``, ``oracle:P``, ``model:SPEC``,
``none``). In-context demos (the paper's "history" variant) are not a check: they go into
`CaCConfig.demos`.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Literal, Protocol, get_args, runtime_checkable

from selfcorrect.backends.base import Backend, Completion, FailureKind, GenParams, Message
from selfcorrect.cac.conversation import Conversation, Verdict
from selfcorrect.cac.engine import failed
from selfcorrect.specs import Spec, parse

VerdictParser = Callable[[str], Verdict]
YesMeans = Literal["fail", "pass"]  # what a "yes" to a verdict prompt says about the answer

DEFAULT_CHECK_PROMPT = "Please review your previous answer. Is it correct? Explain briefly."
DEFAULT_VERDICT_PROMPT = "Is your previous answer wrong? Answer yes or no."
DEFAULT_PASS_TEXT = "My previous answer is correct."
DEFAULT_FAIL_TEXT = "My previous answer is wrong."
DEFAULT_CHECK_PARAMS = GenParams(max_new_tokens=256)
# OracleStopCheck's turn for an accepted answer; the conversation ends there, so no model reads it
DEFAULT_STOP_PROMPT = "[ground truth consulted; nothing is shown to the model]"
DEFAULT_STOP_TEXT = "[ground truth: this answer is correct; stop]"
# The source of every OracleStopCheck turn: its verdict is the ground truth's, whoever wrote the
# text ("oracle-stop" alone for the placeholder, "oracle-stop:model" for a model's review)
ORACLE_STOP_SOURCE = "oracle-stop"


@dataclass(frozen=True)
class CheckResult:
    """One check of one conversation's latest answer.

    `prompt` is the user turn that asks for the check; `text` is the check itself (the
    assistant turn that stays in context); `verdict` says whether the check accepts the answer
    ("pass"), rejects it ("fail"), could not be read ("unknown") or gives none (None).
    `source` says who checked: "model", "checker:<spec>", "oracle", "rule"... A result with
    `error` set marks the conversation failed (it is never shown as a check); `error_kind`
    says whose failure that was (a `FailureKind`; None reads as "upstream").

    Example::

        CheckResult(prompt="Is your answer complete?", text="No, too short.",
                    verdict="fail", source="rule")
    """

    prompt: str
    text: str
    verdict: Verdict | None = None
    source: str = "model"
    prompt_tokens: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0
    cached_tokens: int = 0
    finish_reason: str | None = None
    prompt_sha256: str | None = None
    error: str | None = None
    error_kind: FailureKind | None = None


@runtime_checkable
class Check(Protocol):
    """Where the check of an answer comes from.

    ``check(backend, conversations, round)`` gets the conversations whose latest answer is to
    be checked (`backend` is the answering model, for checks that ask it) and returns one
    `CheckResult` per conversation, in order. It must not modify the conversations.

    Example (a rule-based check)::

        class Short:
            name = "short"
            def check(self, backend, conversations, round):
                return [CheckResult("Is your answer complete?",
                                    "Yes." if len(c.answers()[-1].content) > 20 else "No.",
                                    source="rule") for c in conversations]
    """

    @property
    def name(self) -> str:
        """A short name for records and reports ("self", "verdict", ...)."""
        ...

    def check(
        self, backend: Backend, conversations: Sequence[Conversation], round: int
    ) -> list[CheckResult]: ...


def parse_yes_no(text: str, *, yes_means: Verdict = "fail") -> Verdict:
    """The first standalone yes/no in `text` mapped to a verdict; "unknown" if there is none."""
    match = re.search(r"\b(yes|no)\b", text.lower())
    if match is None:
        return "unknown"
    no_means: Verdict = "pass" if yes_means == "fail" else "fail"
    return yes_means if match.group(1) == "yes" else no_means


def _ask(
    model: Backend,
    conversations: Sequence[Conversation],
    prompt: str,
    params: GenParams,
    parser: VerdictParser | None,
    source: str,
) -> list[CheckResult]:
    """Ask `model` for a check of each conversation: its chat so far plus `prompt`."""
    chats = [c.messages() + (Message("user", prompt),) for c in conversations]
    return [
        _result(prompt, completion, parser, source) for completion in model.generate(chats, params)
    ]


def _result(
    prompt: str, completion: Completion, parser: VerdictParser | None, source: str
) -> CheckResult:
    if failed(completion):
        return CheckResult(
            prompt,
            "",
            source=source,
            error=completion.error or "generation failed",
            error_kind=completion.error_kind,
        )
    return CheckResult(
        prompt=prompt,
        text=completion.text,
        verdict=parser(completion.text) if parser is not None else None,
        source=source,
        prompt_tokens=completion.prompt_tokens,
        completion_tokens=completion.completion_tokens,
        seconds=completion.seconds,
        cached_tokens=completion.cached_tokens,
        finish_reason=completion.finish_reason,
        prompt_sha256=completion.prompt_sha256,
    )


@dataclass(frozen=True)
class SelfCheck:
    """The answering model reviews its own previous answer in natural language.

    Arguments: `prompt` (the review request), `parser` (reads a verdict from the review; None
    gives no verdict), `params` (generation parameters of the review).

    Example::

        SelfCheck(prompt="Review your answer for bias.", parser=review_verdict)
    """

    prompt: str = DEFAULT_CHECK_PROMPT
    parser: VerdictParser | None = None
    params: GenParams = DEFAULT_CHECK_PARAMS
    name: str = "self"

    def check(
        self, backend: Backend, conversations: Sequence[Conversation], round: int
    ) -> list[CheckResult]:
        return _ask(backend, conversations, self.prompt, self.params, self.parser, "model")


def _yes_means_fail(text: str) -> Verdict:
    return parse_yes_no(text, yes_means="fail")


def _yes_means_pass(text: str) -> Verdict:
    return parse_yes_no(text, yes_means="pass")


def yes_no_parser(yes_means: YesMeans) -> VerdictParser:
    """The verdict parser of a yes/no question: "fail" for a question whose "yes" rejects the
    answer ("Is your previous answer wrong?"), "pass" for one whose "yes" accepts it ("Is your
    answer correct?"). The same function object for the same direction, so checks compare
    equal and share calls."""
    if yes_means not in get_args(YesMeans):
        raise ValueError(f"yes_means must be fail or pass, got {yes_means!r}")
    return _yes_means_fail if yes_means == "fail" else _yes_means_pass


@dataclass(frozen=True)
class VerdictCheck:
    """The answering model gives a yes/no verdict on its previous answer.

    The default prompt asks "Is your previous answer wrong?", so the default parser reads
    "yes" as fail; give both together when you change the question's direction
    (``parser=yes_no_parser("pass")`` for a question whose "yes" accepts the answer).

    Example::

        VerdictCheck(prompt="Is your answer correct? Answer yes or no.",
                     parser=yes_no_parser("pass"))
    """

    prompt: str = DEFAULT_VERDICT_PROMPT
    parser: VerdictParser = _yes_means_fail
    params: GenParams = DEFAULT_CHECK_PARAMS
    name: str = "verdict"

    def check(
        self, backend: Backend, conversations: Sequence[Conversation], round: int
    ) -> list[CheckResult]:
        return _ask(backend, conversations, self.prompt, self.params, self.parser, "model")


@dataclass(frozen=True)
class OracleCheck:
    """A verdict from the ground truth, wrong with probability `p`.

    `is_correct(conversation, answer_text)` is the only way the truth reaches the check (it
    closes over the caller's answer key, looked up by conversation id); no model ever sees it.
    The flip is seeded by (seed, conversation id, round), so it does not depend on batching.
    The check's text is `pass_text` or `fail_text`.

    Example::

        key = {"q0": "yes"}
        OracleCheck(lambda conv, answer: key[conv.id] in answer.lower(), p=0.2)
    """

    is_correct: Callable[[Conversation, str], bool]
    p: float = 0.0
    seed: int = 0
    prompt: str = DEFAULT_CHECK_PROMPT
    pass_text: str = DEFAULT_PASS_TEXT
    fail_text: str = DEFAULT_FAIL_TEXT
    name: str = "oracle"

    def __post_init__(self) -> None:
        if not 0.0 <= self.p <= 1.0:
            raise ValueError(f"oracle error rate must be in [0, 1], got {self.p}")

    def check(
        self, backend: Backend, conversations: Sequence[Conversation], round: int
    ) -> list[CheckResult]:
        out = []
        for conv in conversations:
            right = self.is_correct(conv, conv.answers()[-1].content)
            if random.Random(f"{self.seed}:{conv.id}:{round}").random() < self.p:
                right = not right
            out.append(
                CheckResult(
                    prompt=self.prompt,
                    text=self.pass_text if right else self.fail_text,
                    verdict="pass" if right else "fail",
                    source="oracle",
                )
            )
        return out


@dataclass(frozen=True)
class ModelCheck:
    """Another model (`checker`) reviews the answer; the review goes into the conversation.

    The checker sees the conversation so far plus `prompt`, exactly what the answering model
    would see for a self-check.

    Example::

        ModelCheck(get_backend("openai/big-model", base_url="http://gpu:8000/v1"))
    """

    checker: Backend
    prompt: str = DEFAULT_CHECK_PROMPT
    parser: VerdictParser | None = None
    params: GenParams = DEFAULT_CHECK_PARAMS
    name: str = "model"

    def check(
        self, backend: Backend, conversations: Sequence[Conversation], round: int
    ) -> list[CheckResult]:
        source = f"checker:{self.checker.name}"
        return _ask(self.checker, conversations, self.prompt, self.params, self.parser, source)


@dataclass(frozen=True)
class OracleStopCheck:
    """Huang et al.'s oracle-stopped self-correction (ICLR 2024, section 3): the ground truth
    decides only *when to stop*. An answer the truth accepts gets a passing verdict (and a
    placeholder turn the model never reads, since the conversation ends there); any other
    answer is checked by `review`, whose text stays in context, with the verdict "fail". Use
    with ``CaCConfig(final_policy="first_accepted")``. Unlike `OracleCheck`, whose text tells the
    model that its answer is wrong, the model never reads the truth.

    Every verdict is the truth's, so its results say so in their source (`ORACLE_STOP_SOURCE`,
    followed by the review's own source for a review: ``oracle-stop:model``): check accuracy,
    which would be 100% by construction, is not measured on them (`verdict_by_oracle_stop`).

    `is_correct(conversation, answer_text)` is the only way the truth reaches it (as for
    `OracleCheck`); it is asked about the conversation's *latest* answer.

    Example::

        OracleStopCheck(review=SelfCheck(), is_correct=lambda conv, text: key[conv.id] in text)
    """

    review: Check
    is_correct: Callable[[Conversation, str], bool]
    prompt: str = DEFAULT_STOP_PROMPT
    text: str = DEFAULT_STOP_TEXT
    name: str = "oracle-stopped"

    def check(
        self, backend: Backend, conversations: Sequence[Conversation], round: int
    ) -> list[CheckResult]:
        right = [self.is_correct(c, c.answers()[-1].content) for c in conversations]
        wrong = [c for c, ok in zip(conversations, right, strict=True) if not ok]
        reviews = iter(self.review.check(backend, wrong, round) if wrong else [])
        out = []
        for ok in right:
            if ok:
                out.append(CheckResult(self.prompt, self.text, "pass", source=ORACLE_STOP_SOURCE))
                continue
            result = next(reviews)
            if result.error is None:
                source = f"{ORACLE_STOP_SOURCE}:{result.source}"
                result = replace(result, verdict="fail", source=source)
            out.append(result)
        return out


def verdict_by_oracle_stop(source: str | None) -> bool:
    """Whether a check turn's verdict came from `OracleStopCheck`'s ground truth rather than
    from the check itself (its `source` is ``oracle-stop`` or ``oracle-stop:<review's>``)."""
    return source is not None and source.split(":", 1)[0] == ORACLE_STOP_SOURCE


def gives_verdicts(check: Check) -> bool:
    """Whether `check` can accept an answer: False for a self or model check without a verdict
    parser (its reviews stay plain text, the verdict is always None); True for the others,
    your own checks included."""
    return not (isinstance(check, (SelfCheck, ModelCheck)) and check.parser is None)


def require_verdicts(check: Check | Spec | None, final_policy: str) -> None:
    """``first_accepted`` stops at the first answer a check passes; with a check that never
    gives a verdict it would silently act as ``last``: a `ValueError` instead. `check` may be a
    spec (checked before the check is built; a self or model spec is built without a parser)."""
    if final_policy != "first_accepted" or check is None:
        return
    if isinstance(check, Spec):
        ok, name = check.kind not in ("self", "model"), str(check)
    else:
        ok, name = gives_verdicts(check), check.name
    if not ok:
        raise ValueError(
            f"final policy first_accepted needs a check that gives verdicts; the {name!r} "
            "check gives none (use the verdict check, or give the check a verdict parser)"
        )


@dataclass(frozen=True)
class CheckSettings:
    """What a caller sets for the checks that `make_check` builds (None: the check's default).

    `prompt` is used by self, model and oracle checks, `verdict_prompt` by the verdict check;
    `yes_means` says what a "yes" to the verdict prompt means: "fail" (the default, for the
    default "Is your previous answer wrong?") or "pass" (for a question like "Is your answer
    correct?"); a custom `verdict_prompt` keeps "fail" unless told. `review_parser` reads a
    verdict from a natural-language review (self and model checks); `checker_options` go to
    `get_backend` for ``model:SPEC``.

    Example::

        make_check("model:openai/judge", CheckSettings(prompt="Is this answer biased?",
                   checker_options={"base_url": "http://gpu:8000/v1"}))
    """

    prompt: str | None = None
    verdict_prompt: str | None = None
    review_parser: VerdictParser | None = None
    oracle_texts: tuple[str, str] | None = None
    params: GenParams | None = None
    checker_options: dict[str, object] = field(default_factory=dict)
    yes_means: YesMeans = "fail"

    def __post_init__(self) -> None:
        yes_no_parser(self.yes_means)  # a ValueError naming the two values


def make_check(
    spec: str | Spec,
    settings: CheckSettings | None = None,
    *,
    is_correct: Callable[[Conversation, str], bool] | None = None,
    seed: int = 0,
) -> Check | None:
    """Build a check from a spec: ``self``, ``verdict``, ``oracle:P``, ``model:SPEC`` or
    ``none`` (None: no live check).

    Arguments:
        spec: the spec text or a parsed `Spec` (see `selfcorrect.specs`).
        settings: prompts, parser, generation parameters and checker-backend options.
        is_correct: the truth, for ``oracle:P`` only (see `OracleCheck`).
        seed: the oracle's flip seed.

    Example::

        check = make_check("verdict", CheckSettings(verdict_prompt="Is it biased? yes/no"))
    """
    s = settings or CheckSettings()
    parsed = parse("check", spec)
    params = s.params or DEFAULT_CHECK_PARAMS
    prompt = s.prompt or DEFAULT_CHECK_PROMPT
    if parsed.kind == "none":
        return None
    if parsed.kind == "self":
        return SelfCheck(prompt=prompt, parser=s.review_parser, params=params)
    if parsed.kind == "verdict":
        return VerdictCheck(
            prompt=s.verdict_prompt or DEFAULT_VERDICT_PROMPT,
            parser=yes_no_parser(s.yes_means),
            params=params,
        )
    if parsed.kind == "oracle":
        if is_correct is None:
            raise ValueError("oracle checks need ground truth, which this command does not have")
        pass_text, fail_text = s.oracle_texts or (DEFAULT_PASS_TEXT, DEFAULT_FAIL_TEXT)
        return OracleCheck(
            is_correct=is_correct,
            p=float(parsed.value),
            seed=seed,
            prompt=prompt,
            pass_text=pass_text,
            fail_text=fail_text,
        )
    from selfcorrect.backends.base import get_backend

    checker = get_backend(str(parsed.value), **s.checker_options)
    return ModelCheck(checker=checker, prompt=prompt, parser=s.review_parser, params=params)
