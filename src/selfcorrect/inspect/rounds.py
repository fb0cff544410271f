"""The per-round record that Check as Context leaves on an Inspect sample.

Both fronts write the same shape: the `cac` solver into the sample's store and metadata (key
``selfcorrect_cac``), the CaC model provider into each output's metadata (key ``selfcorrect``).
Rounds follow the engine's numbering and BBQ's records.jsonl (`selfcorrect.bbq.records`): round 0
is the first answer; round r >= 1 holds the check that opened it (its prompt, text, verdict and
source) and the answer given after the re-ask. Answers are stored whole, an assistant prefill
included. With ``final="first_accepted"`` a passing check ends the run before its re-ask: that
round has no answer, `stopped_at` names the accepted round and ``accepted_by`` keeps the check.

Example::

    record = CaCRecord.from_dict(sample.metadata["selfcorrect_cac"])
    [(r.round, r.verdict, r.answer[:40]) for r in record.rounds]
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from selfcorrect.cac.conversation import Conversation

STORE_KEY = "selfcorrect_cac"  # solver: TaskState.store and TaskState.metadata
OUTPUT_KEY = "selfcorrect"  # provider: ModelOutput.metadata


@dataclass(frozen=True)
class RoundRecord:
    """One answered round: the check before the answer (None in round 0) and the answer.

    `scores` holds the task's scores of this round's answer (scorer name -> value) when the
    solver scored every round.
    """

    round: int
    answer: str
    check_prompt: str | None = None
    check: str | None = None
    verdict: str | None = None
    check_source: str | None = None
    scores: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "round": self.round,
            "answer": self.answer,
            "check_prompt": self.check_prompt,
            "check": self.check,
            "verdict": self.verdict,
            "check_source": self.check_source,
            "scores": dict(self.scores),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> RoundRecord:
        return cls(
            round=int(d["round"]),
            answer=str(d["answer"]),
            check_prompt=d.get("check_prompt"),
            check=d.get("check"),
            verdict=d.get("verdict"),
            check_source=d.get("check_source"),
            scores=dict(d.get("scores") or {}),
        )


@dataclass(frozen=True)
class CaCRecord:
    """Every answered round of one sample, which check ran and which answer was kept."""

    check: str
    final: str
    rounds: tuple[RoundRecord, ...]
    stopped_at: int | None = None
    accepted_by: dict[str, Any] | None = None  # the passing check (first_accepted policy)

    @property
    def kept_round(self) -> int:
        return self.stopped_at if self.stopped_at is not None else self.rounds[-1].round

    def answer_at(self, r: int) -> RoundRecord:
        """Round r; a run that stopped early keeps its last answer (as `bbq.metrics`)."""
        return self.rounds[min(r, len(self.rounds) - 1)]

    def to_dict(self) -> dict[str, Any]:
        return {
            "check": self.check,
            "final": self.final,
            "kept_round": self.kept_round,
            "stopped_at": self.stopped_at,
            "accepted_by": self.accepted_by,
            "rounds": [r.to_dict() for r in self.rounds],
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> CaCRecord:
        return cls(
            check=str(d.get("check", "")),
            final=str(d.get("final", "last")),
            rounds=tuple(RoundRecord.from_dict(r) for r in d["rounds"]),
            stopped_at=d.get("stopped_at"),
            accepted_by=d.get("accepted_by"),
        )


def from_conversation(conv: Conversation, *, check: str, final: str) -> CaCRecord:
    """The record of a conversation the engine ran (the model provider's metadata)."""
    checks = {t.round: t for t in conv.checks()}
    prompts = {t.round: t for t in conv.turns if t.kind == "check_prompt"}
    rounds = []
    for answer in conv.answers():
        c = checks.get(answer.round) if answer.round else None
        p = prompts.get(answer.round) if answer.round else None
        rounds.append(
            RoundRecord(
                round=answer.round,
                answer=answer.content,
                check_prompt=p.content if p else None,
                check=c.content if c else None,
                verdict=c.verdict if c else None,
                check_source=c.source if c else None,
            )
        )
    accepted = None
    if conv.stopped_at is not None and conv.stopped_at + 1 in checks:
        c = checks[conv.stopped_at + 1]
        accepted = {"round": c.round, "check": c.content, "verdict": c.verdict, "source": c.source}
    return CaCRecord(check, final, tuple(rounds), conv.stopped_at, accepted)


def record_of(state: Any) -> CaCRecord | None:
    """The CaC record of a finished Inspect `TaskState`, wherever CaC ran.

    The solver's record when the solver ran rounds or stopped (its check accepted the first
    answer); otherwise the provider's record on the final output (CaC inside ``generate``);
    otherwise the solver's one-round record; None when neither ran.
    """
    solver = state.store.get(STORE_KEY)
    if solver is not None and (len(solver["rounds"]) > 1 or solver.get("stopped_at") is not None):
        return CaCRecord.from_dict(solver)
    meta = state.output.metadata or {}
    if OUTPUT_KEY in meta:
        return CaCRecord.from_dict(meta[OUTPUT_KEY])
    return CaCRecord.from_dict(solver) if solver is not None else None
