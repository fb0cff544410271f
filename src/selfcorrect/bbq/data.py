"""BBQ records: validation, which answer is biased / unknown, loading and sampling.

Sources: ``paper`` (the paper's 1,100 ambiguous questions), ``full`` (the complete release of
the 6 vendored categories, ambiguous and disambiguated), or a path to any BBQ-format JSONL file.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from selfcorrect.datafiles import DataError, RowProblem, read_jsonl, require_rows, vendored

SOURCES = ("paper", "full")
PAPER_CATEGORIES = (
    "Age",
    "Disability_status",
    "Gender_identity",
    "Nationality",
    "Physical_appearance",
    "Race_ethnicity",
    "Race_x_SES",
    "Race_x_gender",
    "Religion",
    "SES",
    "Sexual_orientation",
)
FULL_CATEGORIES = (
    "Age",
    "Disability_status",
    "Nationality",
    "Physical_appearance",
    "Religion",
    "Sexual_orientation",
)
CONDITIONS = ("ambig", "disambig")
POLARITIES = ("neg", "nonneg")

# Light normalisation of group labels (Parrish et al. 2022 use several spellings per group).
_ALIASES = {
    "f": {"woman", "women", "female", "girl", "girls"},
    "m": {"man", "men", "male", "boy", "boys"},
    "black": {"africanamerican"},
    "africanamerican": {"black"},
    "latino": {"hispanic"},
    "hispanic": {"latino"},
}


def _norm(label: str) -> str:
    return re.sub(r"[^a-z0-9]", "", label.lower())


def _labels(label: str) -> set[str]:
    """Normalised forms of a group label, its intersectional parts and their aliases."""
    out = {_norm(label)} | {_norm(p) for p in re.split(r"[-_]", label) if p}
    for item in list(out):
        out |= _ALIASES.get(item, set())
    out.discard("")
    return out


@dataclass(frozen=True)
class BBQExample:
    uid: str  # "<category>:<example_id>", unique across categories
    example_id: int
    category: str
    question_index: str
    question_polarity: str
    context_condition: str
    context: str
    question: str
    answers: tuple[str, str, str]
    label: int
    unknown_index: int
    biased_index: int | None  # None when the stereotyped answer cannot be determined
    stereotyped_groups: tuple[str, ...]

    @property
    def is_ambiguous(self) -> bool:
        return self.context_condition == "ambig"


def stereotyped_index(
    answer_info: dict[str, list[str]], stereotyped: Sequence[str], category: str
) -> int | None:
    """Index of the answer naming a stereotyped group (None if not exactly one does)."""
    targets: set[str] = set()
    for group in stereotyped:
        targets |= _labels(group)
    candidates = []
    for i in range(3):
        surface, group = answer_info[f"ans{i}"][:2]
        if group == "unknown":
            continue
        if (_labels(group) | {_norm(surface)}) & targets:
            candidates.append(i)
    if len(candidates) == 2 and category == "Race_x_SES":
        # Both answers share the targeted race; the stereotype is about the low-SES one.
        candidates = [
            i for i in candidates if answer_info[f"ans{i}"][1].lower().startswith("lowses")
        ]
    return candidates[0] if len(candidates) == 1 else None


def parse_example(obj: dict[str, Any]) -> BBQExample:
    """Validate one BBQ record; raises `ValueError` saying what is wrong."""
    required = (
        "example_id",
        "category",
        "question_polarity",
        "context_condition",
        "context",
        "question",
        "ans0",
        "ans1",
        "ans2",
        "label",
        "answer_info",
    )
    missing = [k for k in required if k not in obj]
    if missing:
        raise ValueError(f"missing field(s) {', '.join(missing)}")
    if obj["question_polarity"] not in POLARITIES:
        raise ValueError(
            f"question_polarity must be neg or nonneg, got {obj['question_polarity']!r}"
        )
    if obj["context_condition"] not in CONDITIONS:
        raise ValueError(
            f"context_condition must be ambig or disambig, got {obj['context_condition']!r}"
        )
    label = obj["label"]
    if not isinstance(label, int) or isinstance(label, bool) or label not in (0, 1, 2):
        raise ValueError(f"label must be 0, 1 or 2, got {label!r}")
    example_id = obj["example_id"]
    if isinstance(example_id, bool) or not (
        isinstance(example_id, int) or (isinstance(example_id, str) and example_id.isdigit())
    ):
        raise ValueError(f"example_id must be a whole number, got {example_id!r}")
    answers = tuple(obj[f"ans{i}"] for i in range(3))
    if not all(isinstance(a, str) for a in answers):
        raise ValueError("ans0..ans2 must be strings")
    for key in ("context", "question", "category"):
        if not isinstance(obj[key], str) or not obj[key].strip():
            raise ValueError(f"{key} must be a non-empty string")
    info = obj["answer_info"]
    if not isinstance(info, dict) or not all(
        isinstance(info.get(f"ans{i}"), list)
        and len(info[f"ans{i}"]) >= 2
        and all(isinstance(x, str) for x in info[f"ans{i}"][:2])
        for i in range(3)
    ):
        raise ValueError("answer_info must map ans0..ans2 to [surface form, group label] strings")
    unknown = [i for i in range(3) if info[f"ans{i}"][1] == "unknown"]
    if len(unknown) != 1:
        raise ValueError(
            f"expected exactly one 'unknown' answer in answer_info, found {len(unknown)}"
        )
    meta = obj.get("additional_metadata") or {}
    groups = meta.get("stereotyped_groups", []) if isinstance(meta, dict) else None
    if not isinstance(groups, list) or not all(isinstance(g, str) for g in groups):
        raise ValueError("additional_metadata.stereotyped_groups must be a list of strings")
    stereotyped = tuple(groups)
    stereo = stereotyped_index(info, stereotyped, obj["category"])
    if stereo is None:
        biased = None
    elif obj["question_polarity"] == "neg":
        biased = stereo
    else:
        biased = next(i for i in range(3) if i not in (stereo, unknown[0]))
    return BBQExample(
        uid=f"{obj['category']}:{obj['example_id']}",
        example_id=int(example_id),
        category=obj["category"],
        question_index=str(obj.get("question_index", "")),
        question_polarity=obj["question_polarity"],
        context_condition=obj["context_condition"],
        context=obj["context"],
        question=obj["question"],
        answers=(answers[0], answers[1], answers[2]),
        label=label,
        unknown_index=unknown[0],
        biased_index=biased,
        stereotyped_groups=stereotyped,
    )


def data_files(source: str | Path, categories: Sequence[str] | None = None) -> list[Path]:
    """The files `load_bbq` reads for `source` and `categories` (for a run's fingerprint)."""
    if str(source) in SOURCES:
        known = PAPER_CATEGORIES if source == "paper" else FULL_CATEGORIES
        wanted = list(categories) if categories else list(known)
        unknown = [c for c in wanted if c not in known]
        if unknown:
            raise DataError(
                f"unknown BBQ categor{'y' if len(unknown) == 1 else 'ies'} {', '.join(unknown)} "
                f"for source {source!r}; known: {', '.join(known)}"
            )
        folder = "paper_subset" if source == "paper" else "full"
        return [vendored("bbq", folder, f"{c}.jsonl") for c in wanted]
    return [Path(source)]


def load_bbq(
    source: str | Path = "paper",
    *,
    categories: Sequence[str] | None = None,
    conditions: Iterable[str] = CONDITIONS,
    limit_per_category: int | None = None,
    seed: int = 0,
    strict: bool = False,
) -> tuple[list[BBQExample], list[RowProblem]]:
    """Examples (filtered, then sampled per category with `seed`) and the bad rows found.

    Sampling is deterministic: a seeded shuffle per category, keeping the first K, returned in
    file order so runs are stable under a changed limit.
    """
    conditions = tuple(conditions)
    bad = [c for c in conditions if c not in CONDITIONS]
    if bad:
        raise DataError(f"unknown context condition(s) {', '.join(bad)}; use ambig and/or disambig")
    if limit_per_category is not None and limit_per_category < 1:
        raise DataError(f"limit per category must be >= 1, got {limit_per_category}")
    problems: list[RowProblem] = []
    by_category: dict[str, list[BBQExample]] = {}
    seen: set[str] = set()
    for path in data_files(source, categories):
        rows, row_problems = read_jsonl(path, strict=strict)
        problems += row_problems
        valid = 0
        for line, obj in rows:
            try:
                ex = parse_example(obj)
            except (ValueError, TypeError, AttributeError, KeyError, IndexError) as exc:
                message = str(exc) if isinstance(exc, ValueError) else f"wrong type ({exc})"
                problem = RowProblem(str(path), line, message)
                if strict:
                    raise DataError(str(problem)) from exc
                problems.append(problem)
                continue
            valid += 1
            if ex.uid in seen:
                problems.append(RowProblem(str(path), line, f"duplicate example {ex.uid}"))
                continue
            seen.add(ex.uid)
            if ex.context_condition in conditions and (
                not categories or str(source) in SOURCES or ex.category in categories
            ):
                by_category.setdefault(ex.category, []).append(ex)
        require_rows(path, valid, problems, "BBQ")
    out: list[BBQExample] = []
    for category in sorted(by_category):
        items = by_category[category]
        if limit_per_category is not None and len(items) > limit_per_category:
            order = list(range(len(items)))
            random.Random(f"{seed}:{category}").shuffle(order)
            keep = sorted(order[:limit_per_category])
            items = [items[i] for i in keep]
        out.extend(items)
    return out, problems
