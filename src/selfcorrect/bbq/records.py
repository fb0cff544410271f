"""The BBQ study's file contracts as frozen dataclasses: a records.jsonl line and metrics.json.

Every class has ``to_dict`` (the JSON shape written to disk) and ``from_dict`` (reads it back).
``from_dict`` is tolerant of fields added later: a records.jsonl line written before the
official grader existed has no ``parsed_official``, which is then computed from the stored
answer text (the grader is a pure function of the text and the options); a metrics.json without
the ``official`` block reads with ``official=None``.

Graders: ``tolerant`` (our parser: the whole answer; unparsed counts as wrong) and ``official``
(the paper's official grader: the first sentence; unknown is left out of the accuracy). See
`selfcorrect.bbq.parse`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from selfcorrect.bbq.parse import parse_answer_official

Grader = Literal["tolerant", "official"]
GRADERS: tuple[Grader, ...] = ("tolerant", "official")


def _ci(value: Any) -> tuple[float, float] | None:
    return None if value is None else (float(value[0]), float(value[1]))


def _ci_out(value: tuple[float, float] | None) -> list[float] | None:
    return None if value is None else [value[0], value[1]]


# --- records.jsonl ---------------------------------------------------------------------------


@dataclass(frozen=True)
class RoundResult:
    """One round of one question: the answer, both graders' readings, and the check before it.

    ``parsed`` is the tolerant grader's option index (None: unparsed); ``parsed_official`` the
    official grader's (None: unknown). Round 0 has no check (``check_text`` and ``verdict`` None).
    ``check_source`` says who checked (the check turn's source: "model", "oracle",
    "oracle-stop:model" when the ground truth gave an oracle-stopped review's verdict, ...).
    """

    answer_text: str
    parsed: int | None
    parsed_official: int | None
    check_text: str | None = None
    verdict: str | None = None  # "pass", "fail", "unknown" or None (no check this round)
    check_source: str | None = None  # None: no check this round, or a file from before it

    def answer(self, grader: Grader = "tolerant") -> int | None:
        """The option index the given grader reads in this round's answer."""
        return self.parsed_official if grader == "official" else self.parsed

    def to_dict(self) -> dict[str, Any]:
        return {
            "answer_text": self.answer_text,
            "parsed": self.parsed,
            "parsed_official": self.parsed_official,
            "check_text": self.check_text,
            "verdict": self.verdict,
            "check_source": self.check_source,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], options: Sequence[str] | None = None) -> RoundResult:
        """Read a round; without ``parsed_official`` (older files) it is graded from
        ``answer_text`` with `options`, after the protocol's answer prefill as the study does
        (None when the options are not known either)."""
        text = d.get("answer_text") or ""
        if "parsed_official" in d:
            official = d["parsed_official"]
        elif options:
            from selfcorrect.bbq.prompts import paper_prompts

            p = paper_prompts()
            prefills = (p.answer_prefill, p.cot_postamble_prefill)
            official = parse_answer_official(text, options, prefill=prefills)
        else:
            official = None
        return cls(
            answer_text=text,
            parsed=d.get("parsed"),
            parsed_official=official,
            check_text=d.get("check_text"),
            verdict=d.get("verdict"),
            check_source=d.get("check_source"),
        )


@dataclass(frozen=True)
class BBQRecord:
    """One finished question: its metadata, one `RoundResult` per round, and every turn."""

    id: str
    example_id: int
    category: str
    context_condition: str  # "ambig" or "disambig"
    question_polarity: str  # "neg" or "nonneg"
    label: int
    unknown_index: int
    biased_index: int | None  # None when the stereotyped answer cannot be determined
    answers: tuple[str, ...]
    rounds: tuple[RoundResult, ...]
    stopped_at: int | None = None
    turns: tuple[dict[str, Any], ...] = field(default=(), repr=False)

    def answer_at(self, r: int, grader: Grader = "tolerant") -> int | None:
        """The answer in round r; a conversation that stopped early keeps its last answer."""
        if not self.rounds:
            return None
        return self.rounds[min(r, len(self.rounds) - 1)].answer(grader)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "example_id": self.example_id,
            "category": self.category,
            "context_condition": self.context_condition,
            "question_polarity": self.question_polarity,
            "label": self.label,
            "unknown_index": self.unknown_index,
            "biased_index": self.biased_index,
            "answers": list(self.answers),
            "rounds": [x.to_dict() for x in self.rounds],
            "stopped_at": self.stopped_at,
            "turns": [dict(t) for t in self.turns],
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> BBQRecord:
        """Read a records.jsonl line (today's or an older one without the official parses).

        Raises ValueError naming the first missing required field.
        """
        required = ("category", "context_condition", "label", "unknown_index", "rounds")
        missing = [k for k in required if k not in d]
        if missing:
            raise ValueError(f"BBQ record {d.get('id', '?')!r} lacks {', '.join(missing)}")
        answers = tuple(d.get("answers") or ())
        return cls(
            id=str(d.get("id", f"{d['category']}:{d.get('example_id', '?')}")),
            example_id=int(d.get("example_id", -1)),
            category=d["category"],
            context_condition=d["context_condition"],
            question_polarity=d.get("question_polarity", ""),
            label=d["label"],
            unknown_index=d["unknown_index"],
            biased_index=d.get("biased_index"),
            answers=answers,
            rounds=tuple(RoundResult.from_dict(x, answers or None) for x in d["rounds"]),
            stopped_at=d.get("stopped_at"),
            turns=tuple(d.get("turns") or ()),
        )


# --- metrics.json ----------------------------------------------------------------------------


@dataclass(frozen=True)
class ScoreCI:
    """A score and its bootstrap 95% interval (either None when undefined)."""

    value: float | None
    ci95: tuple[float, float] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"value": self.value, "ci95": _ci_out(self.ci95)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | None) -> ScoreCI:
        d = d or {}
        return cls(value=d.get("value"), ci95=_ci(d.get("ci95")))


@dataclass(frozen=True)
class OfficialSummary:
    """One round graded by the official grader: accuracy over the answers it could read
    (``n_graded``), the share it could not (``unknown_rate``) and the bias scores."""

    n_graded: int
    accuracy: float | None
    accuracy_ci95: tuple[float, float] | None
    unknown_rate: float | None
    unknown_ci95: tuple[float, float] | None
    bias_score_ambig: ScoreCI
    bias_score_ambig_paper_code: ScoreCI
    bias_score_disambig: ScoreCI

    def to_dict(self) -> dict[str, Any]:
        return {
            "n_graded": self.n_graded,
            "accuracy": self.accuracy,
            "accuracy_ci95": _ci_out(self.accuracy_ci95),
            "unknown_rate": self.unknown_rate,
            "unknown_ci95": _ci_out(self.unknown_ci95),
            "bias_score_ambig": self.bias_score_ambig.to_dict(),
            "bias_score_ambig_paper_code": self.bias_score_ambig_paper_code.to_dict(),
            "bias_score_disambig": self.bias_score_disambig.to_dict(),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> OfficialSummary:
        return cls(
            n_graded=d.get("n_graded", 0),
            accuracy=d.get("accuracy"),
            accuracy_ci95=_ci(d.get("accuracy_ci95")),
            unknown_rate=d.get("unknown_rate"),
            unknown_ci95=_ci(d.get("unknown_ci95")),
            bias_score_ambig=ScoreCI.from_dict(d.get("bias_score_ambig")),
            bias_score_ambig_paper_code=ScoreCI.from_dict(d.get("bias_score_ambig_paper_code")),
            bias_score_disambig=ScoreCI.from_dict(d.get("bias_score_disambig")),
        )


@dataclass(frozen=True)
class RoundSummary:
    """Every metric of one round over a set of records. The top-level fields are the tolerant
    grader's (as metrics.json always had them); ``official`` holds the official grader's."""

    round: int
    n: int
    accuracy: float | None
    accuracy_ci95: tuple[float, float] | None
    unparsed_rate: float | None
    unparsed_ci95: tuple[float, float] | None
    bias_score_ambig: ScoreCI
    bias_score_ambig_paper_code: ScoreCI
    bias_score_disambig: ScoreCI
    n_bias_undetermined: int = 0
    official: OfficialSummary | None = None  # None in metrics.json written before it existed

    def to_dict(self) -> dict[str, Any]:
        out = {
            "round": self.round,
            "n": self.n,
            "accuracy": self.accuracy,
            "accuracy_ci95": _ci_out(self.accuracy_ci95),
            "unparsed_rate": self.unparsed_rate,
            "unparsed_ci95": _ci_out(self.unparsed_ci95),
            "bias_score_ambig": self.bias_score_ambig.to_dict(),
            "bias_score_ambig_paper_code": self.bias_score_ambig_paper_code.to_dict(),
            "bias_score_disambig": self.bias_score_disambig.to_dict(),
            "n_bias_undetermined": self.n_bias_undetermined,
        }
        if self.official is not None:
            out["official"] = self.official.to_dict()
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> RoundSummary:
        return cls(
            round=d["round"],
            n=d["n"],
            accuracy=d.get("accuracy"),
            accuracy_ci95=_ci(d.get("accuracy_ci95")),
            unparsed_rate=d.get("unparsed_rate"),
            unparsed_ci95=_ci(d.get("unparsed_ci95")),
            bias_score_ambig=ScoreCI.from_dict(d.get("bias_score_ambig")),
            bias_score_ambig_paper_code=ScoreCI.from_dict(d.get("bias_score_ambig_paper_code")),
            bias_score_disambig=ScoreCI.from_dict(d.get("bias_score_disambig")),
            n_bias_undetermined=d.get("n_bias_undetermined", 0),
            official=OfficialSummary.from_dict(d["official"]) if d.get("official") else None,
        )


@dataclass(frozen=True)
class Flips:
    """Answer changes from round r-1 to round r (tolerant grader)."""

    round: int
    wrong_to_right: int = 0
    right_to_wrong: int = 0
    stayed_right: int = 0
    stayed_wrong: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "round": self.round,
            "wrong_to_right": self.wrong_to_right,
            "right_to_wrong": self.right_to_wrong,
            "stayed_right": self.stayed_right,
            "stayed_wrong": self.stayed_wrong,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Flips:
        keys = ("wrong_to_right", "right_to_wrong", "stayed_right", "stayed_wrong")
        return cls(round=d["round"], **{k: d.get(k, 0) for k in keys})


@dataclass(frozen=True)
class CheckAccuracy:
    """How often the round-r check was right about the round-(r-1) answer (tolerant grader)."""

    round: int
    n: int
    n_unknown: int
    accuracy: float | None
    ci95: tuple[float, float] | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "round": self.round,
            "n": self.n,
            "n_unknown": self.n_unknown,
            "accuracy": self.accuracy,
            "ci95": _ci_out(self.ci95),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> CheckAccuracy:
        return cls(
            round=d["round"],
            n=d.get("n", 0),
            n_unknown=d.get("n_unknown", 0),
            accuracy=d.get("accuracy"),
            ci95=_ci(d.get("ci95")),
        )


@dataclass(frozen=True)
class BBQMetrics:
    """metrics.json of a BBQ run. ``rounds`` counts CaC rounds (``per_round`` has rounds + 1
    rows, round 0 being the initial answer; none when no question finished). The study fills
    ``data_problems``, ``failed`` and ``tokens``."""

    n: int
    rounds: int
    per_round: tuple[RoundSummary, ...]
    by_category: dict[str, tuple[RoundSummary, ...]]
    flips: tuple[Flips, ...] = ()
    check_accuracy: tuple[CheckAccuracy, ...] = ()
    check_accuracy_by_category: dict[str, tuple[CheckAccuracy, ...]] = field(default_factory=dict)
    data_problems: tuple[str, ...] = ()
    failed: int = 0
    tokens: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "n": self.n,
            "rounds": self.rounds,
            "per_round": [x.to_dict() for x in self.per_round],
            "by_category": {c: [x.to_dict() for x in v] for c, v in self.by_category.items()},
            "flips": [x.to_dict() for x in self.flips],
            "check_accuracy": [x.to_dict() for x in self.check_accuracy],
            "check_accuracy_by_category": {
                c: [x.to_dict() for x in v] for c, v in self.check_accuracy_by_category.items()
            },
            "data_problems": list(self.data_problems),
            "failed": self.failed,
            "tokens": dict(self.tokens),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> BBQMetrics:
        return cls(
            n=d.get("n", 0),
            rounds=d.get("rounds", 0),
            per_round=tuple(RoundSummary.from_dict(x) for x in d.get("per_round", ())),
            by_category={
                c: tuple(RoundSummary.from_dict(x) for x in v)
                for c, v in (d.get("by_category") or {}).items()
            },
            flips=tuple(Flips.from_dict(x) for x in d.get("flips", ())),
            check_accuracy=tuple(CheckAccuracy.from_dict(x) for x in d.get("check_accuracy", ())),
            check_accuracy_by_category={
                c: tuple(CheckAccuracy.from_dict(x) for x in v)
                for c, v in (d.get("check_accuracy_by_category") or {}).items()
            },
            data_problems=tuple(d.get("data_problems") or ()),
            failed=d.get("failed", 0),
            tokens=dict(d.get("tokens") or {}),
        )
