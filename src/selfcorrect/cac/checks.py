"""Check sources: where the check ``c_t`` of the previous answer comes from.

Each source appends, per active conversation, the check prompt (a user turn) and the check itself
(an assistant turn carrying a verdict): the check stays in context for the next answer.

- `SelfCheck`: the same model reviews its answer in natural language (the paper's default);
  an optional verdict parser reads a verdict out of the review.
- `VerdictCheck`: the same model answers a yes/no question about its answer.
- `OracleCheck`: the verdict comes from the ground truth, flipped with probability p.
- `ModelCheck`: another model reviews the answer.
- `HistoryDemos`: no live checks; pre-written exchanges go into the context instead.

Only `OracleCheck` reads `Conversation.truth`, through the `is_correct` function it is given.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from selfcorrect.backends.base import Backend, GenParams
from selfcorrect.cac.engine import CaCConfig, Conversation, Turn, Verdict, generate_turns

VerdictParser = Callable[[str], Verdict]


def parse_yes_no(text: str, *, yes_means: Verdict = "fail") -> Verdict:
    """The first standalone yes/no in `text` mapped to a verdict; "unknown" if none or both."""
    match = re.search(r"\b(yes|no)\b", text.lower())
    if match is None:
        return "unknown"
    no_means: Verdict = "pass" if yes_means == "fail" else "fail"
    return yes_means if match.group(1) == "yes" else no_means


def _ask_check(convs: Sequence[Conversation], prompt: str, round: int) -> None:
    for conv in convs:
        conv.add(Turn("user", prompt, "check_prompt", round))


def _set_verdicts(convs: Sequence[Conversation], round: int, parser: VerdictParser | None) -> None:
    for conv in convs:
        if not conv.active:
            continue
        last = conv.turns[-1]
        if last.kind == "check" and last.round == round:
            verdict = parser(last.content) if parser is not None else None
            conv.turns[-1] = Turn(**{**last.to_dict(), "verdict": verdict})


class _NoPrepare:
    live = True

    def prepare(self, conv: Conversation) -> None:
        """Live checks add nothing before the question."""


@dataclass
class SelfCheck(_NoPrepare):
    """The model reviews its own previous answer (natural language)."""

    verdict_parser: VerdictParser | None = None
    name: str = "self"

    def run(
        self, backend: Backend, convs: Sequence[Conversation], round: int, config: CaCConfig
    ) -> None:
        _ask_check(convs, config.check_prompt, round)
        generate_turns(backend, convs, config.check, kind="check", round=round)
        _set_verdicts(convs, round, self.verdict_parser)


@dataclass
class VerdictCheck(SelfCheck):
    """The model answers a yes/no question about its previous answer (a verdict only)."""

    yes_means: Verdict = "fail"
    name: str = "verdict"

    def __post_init__(self) -> None:
        self.verdict_parser = lambda text: parse_yes_no(text, yes_means=self.yes_means)


@dataclass
class OracleCheck(_NoPrepare):
    """A verdict from the ground truth, wrong with probability `p` (seeded per sample and round).

    `is_correct(conv, answer_text)` judges the previous answer against ``conv.truth``; the
    verdict text is `pass_text` or `fail_text` (the paper's "My previous answer is (un)biased.").
    """

    is_correct: Callable[[Conversation, str], bool]
    p: float = 0.0
    seed: int = 0
    pass_text: str = "My previous answer is correct."
    fail_text: str = "My previous answer is wrong."
    name: str = "oracle"

    def __post_init__(self) -> None:
        if not 0.0 <= self.p <= 1.0:
            raise ValueError(f"oracle error rate must be in [0, 1], got {self.p}")

    def run(
        self, backend: Backend, convs: Sequence[Conversation], round: int, config: CaCConfig
    ) -> None:
        _ask_check(convs, config.check_prompt, round)
        for conv in convs:
            answer = conv.answers()[-1].content
            right = self.is_correct(conv, answer)
            # Seeded by (seed, sample, round): independent of batch composition and order.
            if random.Random(f"{self.seed}:{conv.id}:{round}").random() < self.p:
                right = not right
            verdict: Verdict = "pass" if right else "fail"
            text = self.pass_text if right else self.fail_text
            conv.add(Turn("assistant", text, "check", round, verdict=verdict, source="oracle"))


@dataclass
class ModelCheck(_NoPrepare):
    """Another model reviews the answer; its review goes into the main conversation."""

    checker: Backend
    verdict_parser: VerdictParser | None = None
    name: str = "model"

    def run(
        self, backend: Backend, convs: Sequence[Conversation], round: int, config: CaCConfig
    ) -> None:
        views = []
        for conv in convs:
            view = Conversation(id=conv.id, question=conv.question, turns=list(conv.turns))
            view.add(Turn("user", config.check_prompt, "check_prompt", round))
            views.append(view)
        generate_turns(self.checker, views, config.check, kind="check", round=round)
        for conv, view in zip(convs, views, strict=True):
            if view.error is not None:
                conv.error = f"checker: {view.error}"
                continue
            review = view.turns[-1]
            conv.add(Turn("user", config.check_prompt, "check_prompt", round))
            conv.add(Turn(**{**review.to_dict(), "source": f"checker:{self.checker.name}"}))
        _set_verdicts(convs, round, self.verdict_parser)


@dataclass
class HistoryDemos:
    """The paper's "backup" variant: exchanges of (query, answer, check, answer) go into the
    context before the question, and no live check is made."""

    demos: Sequence[tuple[str, str]] = field(default_factory=tuple)
    live: bool = False
    name: str = "history"

    def prepare(self, conv: Conversation) -> None:
        for user, assistant in self.demos:
            conv.add(Turn("user", user, "demo", 0, source="demo"))
            conv.add(Turn("assistant", assistant, "demo", 0, source="demo"))

    def run(
        self, backend: Backend, convs: Sequence[Conversation], round: int, config: CaCConfig
    ) -> None:
        raise RuntimeError("history demos make no live checks")


@dataclass
class NoCheck(_NoPrepare):
    """Answer once: the baseline without self-correction."""

    live: bool = False
    name: str = "none"

    def run(
        self, backend: Backend, convs: Sequence[Conversation], round: int, config: CaCConfig
    ) -> None:
        raise RuntimeError("no check source: rounds are not run")


__all__ = [
    "GenParams",
    "HistoryDemos",
    "ModelCheck",
    "NoCheck",
    "OracleCheck",
    "SelfCheck",
    "VerdictCheck",
    "parse_yes_no",
]


CHECK_SPECS = "none, self, verdict, oracle:P, model:SPEC, history"


def make_check(
    spec: str,
    *,
    verdict_parser: VerdictParser | None = None,
    is_correct: Callable[[Conversation, str], bool] | None = None,
    oracle_texts: tuple[str, str] | None = None,
    history: Sequence[tuple[str, str]] = (),
    checker_options: dict[str, object] | None = None,
    seed: int = 0,
):  # type: ignore[no-untyped-def]
    """Build a check source from a command-line spec (see `CHECK_SPECS`)."""
    kind, _, arg = spec.partition(":")
    if kind == "none" and not arg:
        return NoCheck()
    if kind == "self" and not arg:
        return SelfCheck(verdict_parser=verdict_parser)
    if kind == "verdict" and not arg:
        return VerdictCheck()
    if kind == "oracle":
        if is_correct is None:
            raise ValueError("oracle checks need ground truth, which this command does not have")
        try:
            p = float(arg or "0")
        except ValueError:
            raise ValueError(f"oracle:P needs a number P in [0, 1], got {arg!r}") from None
        pass_text, fail_text = oracle_texts or (OracleCheck.pass_text, OracleCheck.fail_text)
        return OracleCheck(
            is_correct=is_correct, p=p, seed=seed, pass_text=pass_text, fail_text=fail_text
        )
    if kind == "model" and arg:
        from selfcorrect.backends.base import get_backend

        return ModelCheck(
            checker=get_backend(arg, **(checker_options or {})), verdict_parser=verdict_parser
        )
    if kind == "history" and not arg:
        if not history:
            raise ValueError("history demos are not defined for this command")
        return HistoryDemos(demos=tuple(history))
    raise ValueError(f"unknown check {spec!r}; use one of: {CHECK_SPECS}")
