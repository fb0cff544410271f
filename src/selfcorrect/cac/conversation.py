"""A conversation and its turns: what the engine writes and every study, server and report reads.

A `Conversation` holds what a run starts from (question, optional system prompt and earlier
turns) and the `Turn`s the engine appends: answers, check prompts, checks (with verdicts) and
re-asks, each with what it cost to produce. Ground truth is never part of it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from selfcorrect.backends.base import Chat, FailureKind, Message

Verdict = Literal["pass", "fail", "unknown"]  # does the check accept the previous answer?
TurnKind = Literal[
    "system",
    "demo",
    "context",
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
    """One message of a conversation, with what it cost to produce.

    `seconds` is the backend's own time for this request; `batch_seconds` is the wall time of
    the whole backend call that produced this turn together with the others of its batch (so
    summing `seconds` over turns gives request time, not wall time). `prompt_sha256` is the
    hash of the exact prompt text the model continued, when the backend reports it. `kind` is
    one of system, demo, context, question, reasoning, followup, answer, check_prompt, check,
    reask; `round` is 0 for the first answer and r for everything of round r.

    Example::

        for t in conv.turns:
            print(t.round, t.kind, t.verdict, t.content[:60])
    """

    role: Literal["system", "user", "assistant"]
    content: str
    kind: TurnKind
    round: int
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    seconds: float = 0.0
    batch_seconds: float = 0.0
    finish_reason: str | None = None
    verdict: Verdict | None = None
    source: str = "template"  # "model", "checker:<spec>", "oracle", "rule", "demo", "template"
    prompt_sha256: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Turn:
        """A turn from `to_dict` output; keys this version does not know are ignored."""
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in data.items() if k in known})


@dataclass
class Conversation:
    """One sample's conversation.

    Before a run, set `question` (and optionally `system` and `context`, earlier turns that
    come before the question); the engine writes `turns`: system, demos, context, question,
    then every answer, check and re-ask. After a run, `final_answer()` is the answer the
    final-answer policy keeps; `error` says why a failed conversation stopped and `error_kind`
    whose failure that was (see `FailureKind`).

    Example::

        conv = Conversation(id="q1", question="Is 91 a prime number?")
        run_cac(backend, [conv], SelfCheck(), CaCConfig(rounds=1))
        print(conv.final_answer().content)
    """

    id: str
    question: str
    system: str | None = None
    context: tuple[Message, ...] = ()
    turns: list[Turn] = field(default_factory=list)
    stopped_at: int | None = None  # round whose answer was accepted (first_accepted policy)
    error: str | None = None
    error_kind: FailureKind | None = None

    @classmethod
    def from_messages(cls, id: str, messages: Sequence[Message]) -> Conversation:
        """A conversation from a chat: a leading system message, earlier turns kept as
        context, and the last message (which must be the user's) as the question."""
        msgs = list(messages)
        system = msgs.pop(0).content if msgs and msgs[0].role == "system" else None
        if not msgs or msgs[-1].role != "user":
            raise ValueError("the last message must be the user's question")
        if any(m.role == "system" for m in msgs):
            raise ValueError("a system message may only come first")
        return cls(id=id, question=msgs[-1].content, system=system, context=tuple(msgs[:-1]))

    def messages(self) -> Chat:
        """The chat the model sees: every turn's role and content."""
        return tuple(Message(t.role, t.content) for t in self.turns)

    def answers(self) -> list[Turn]:
        """The answer turns, round 0 first."""
        return [t for t in self.turns if t.kind == "answer"]

    def checks(self) -> list[Turn]:
        """The check turns (assistant side), round 1 first."""
        return [t for t in self.turns if t.kind == "check"]

    def generated(self) -> list[Turn]:
        """The assistant turns the engine asked a backend for: answers, reasoning and checks."""
        return [
            t
            for t in self.turns
            if t.role == "assistant" and t.kind in ("answer", "reasoning", "check")
        ]

    def final_answer(self) -> Turn | None:
        """The answer the policy keeps: the accepted one, else the last one given."""
        answers = self.answers()
        if not answers:
            return None
        if self.stopped_at is not None:
            return next(t for t in answers if t.round == self.stopped_at)
        return answers[-1]

    def fail(self, error: str, kind: FailureKind | None) -> None:
        """Mark the conversation failed, unless it already is (the first failure is the cause);
        a failure of unknown kind counts as the model's or its server's ("upstream")."""
        if self.error is None:
            self.error, self.error_kind = error, kind or "upstream"

    @property
    def active(self) -> bool:
        return self.error is None and self.stopped_at is None

    def add(self, turn: Turn) -> None:
        self.turns.append(turn)
