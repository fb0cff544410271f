"""Check as Context: answer -> (check -> re-ask -> answer) x R, breadth-first over a batch.

For a query q: ``a_0 = M(q)``; for round t = 1..R, a check ``c_t`` of the previous answer is
appended to the conversation (the check stays in context), q is asked again and
``a_t = M(history)`` (Wang et al. 2024, section 5). Every step advances *all* active
conversations by one turn with a single backend call, so batched backends stay full.

The engine knows nothing about BBQ or jailbreaks: studies give it conversations, a check source
and a `CaCConfig`, and read back the recorded turns.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from selfcorrect.backends.base import Backend, Chat, Completion, GenParams, Message

Verdict = Literal["pass", "fail", "unknown"]  # does the check accept the previous answer?
TurnKind = Literal[
    "system",
    "demo",
    "question",
    "reasoning",
    "followup",
    "answer",
    "check_prompt",
    "check",
    "reask",
]
FinalPolicy = Literal["last", "first_accepted"]


@dataclass(frozen=True)
class Turn:
    """One message of a conversation, with what it cost to produce."""

    role: Literal["system", "user", "assistant"]
    content: str
    kind: TurnKind
    round: int
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    seconds: float = 0.0
    finish_reason: str | None = None
    verdict: Verdict | None = None
    source: str = "template"  # "model", "checker:<spec>", "oracle", "demo" or "template"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Conversation:
    """One sample's conversation. `truth` is only read by check sources that declare it."""

    id: str
    question: str
    system: str | None = None
    truth: Any = field(default=None, repr=False)
    turns: list[Turn] = field(default_factory=list)
    stopped_at: int | None = None  # round whose answer was accepted (first_accepted policy)
    error: str | None = None

    def messages(self) -> Chat:
        """The chat the model sees: every turn's role and content, never `truth`."""
        return tuple(Message(t.role, t.content) for t in self.turns)

    def answers(self) -> list[Turn]:
        return [t for t in self.turns if t.kind == "answer"]

    def checks(self) -> list[Turn]:
        return [t for t in self.turns if t.kind == "check"]

    @property
    def active(self) -> bool:
        return self.error is None and self.stopped_at is None

    def add(self, turn: Turn) -> None:
        self.turns.append(turn)


@dataclass(frozen=True)
class CaCConfig:
    """How to run the rounds. Prompts are fields of the config, never built inline.

    `reask_template` has one field, ``{question}``, substituted literally (data is never used as
    a format string).
    """

    rounds: int = 1
    check_prompt: str = "Please review your previous answer. Is it correct?"
    reask_template: str = "Based on your review, answer the question again:\n{question}"
    answer: GenParams = GenParams(max_new_tokens=256)
    check: GenParams = GenParams(max_new_tokens=256)
    reanswer: GenParams = GenParams(max_new_tokens=256)
    final_policy: FinalPolicy = "last"
    # Two-step answers (chain of thought): the first generation is kept as "reasoning", then
    # `followup` is asked and answered with `followup_params` (e.g. "The single, most likely
    # answer choice is").
    followup: str | None = None
    followup_params: GenParams = GenParams(max_new_tokens=16)

    def __post_init__(self) -> None:
        if self.rounds < 0:
            raise ValueError(f"rounds must be >= 0, got {self.rounds}")
        if self.final_policy not in ("last", "first_accepted"):
            raise ValueError(
                f"final_policy must be last or first_accepted, not {self.final_policy!r}"
            )

    def reask(self, question: str) -> str:
        return self.reask_template.replace("{question}", question)


def model_turn(
    completion: Completion, *, kind: TurnKind, round: int, prefill: str = "", source: str = "model"
) -> Turn:
    return Turn(
        role="assistant",
        content=prefill + completion.text,
        kind=kind,
        round=round,
        prompt_tokens=completion.prompt_tokens,
        completion_tokens=completion.completion_tokens,
        cached_tokens=completion.cached_tokens,
        seconds=completion.seconds,
        finish_reason=completion.finish_reason,
        source=source,
    )


def generate_turns(
    backend: Backend,
    convs: Sequence[Conversation],
    params: GenParams,
    *,
    kind: TurnKind,
    round: int,
) -> None:
    """One backend call for all `convs`; appends the replies, marks per-sample errors."""
    if not convs:
        return
    completions = backend.generate([c.messages() for c in convs], params)
    for conv, completion in zip(convs, completions, strict=True):
        if completion.error is not None or completion.finish_reason == "error":
            conv.error = completion.error or "generation failed"
            continue
        conv.add(model_turn(completion, kind=kind, round=round, prefill=params.prefill))


def run_cac(
    backend: Backend, convs: Sequence[Conversation], check: Any, config: CaCConfig
) -> list[Conversation]:
    """Run CaC on `convs` in place and return them.

    `check` is a check source (see `selfcorrect.cac.checks`): it may add demo turns before the
    question (`prepare`) and, if live, produces one check per active conversation per round.
    """
    for conv in convs:
        if not conv.turns:
            if conv.system:
                conv.add(Turn("system", conv.system, "system", 0))
            check.prepare(conv)
            conv.add(Turn("user", conv.question, "question", 0))
    _answer(backend, convs, config, config.answer, 0)
    rounds = config.rounds if getattr(check, "live", True) else 0
    for r in range(1, rounds + 1):
        active = [c for c in convs if c.active]
        if not active:
            break
        check.run(backend, active, r, config)
        if config.final_policy == "first_accepted":
            for conv in active:
                last = conv.checks()[-1] if conv.checks() else None
                if conv.active and last is not None and last.verdict == "pass":
                    conv.stopped_at = r - 1
        active = [c for c in active if c.active]
        for conv in active:
            conv.add(Turn("user", config.reask(conv.question), "reask", r))
        _answer(backend, active, config, config.reanswer, r)
    return list(convs)


def _answer(
    backend: Backend,
    convs: Sequence[Conversation],
    config: CaCConfig,
    params: GenParams,
    round: int,
) -> None:
    if config.followup is None:
        generate_turns(backend, convs, params, kind="answer", round=round)
        return
    generate_turns(backend, convs, params, kind="reasoning", round=round)
    active = [c for c in convs if c.active]
    for conv in active:
        conv.add(Turn("user", config.followup, "followup", round))
    generate_turns(backend, active, config.followup_params, kind="answer", round=round)


def final_answer(conv: Conversation) -> Turn | None:
    """The answer the policy keeps: the accepted one, else the last one given."""
    answers = conv.answers()
    if not answers:
        return None
    if conv.stopped_at is not None:
        return next(t for t in answers if t.round == conv.stopped_at)
    return answers[-1]
