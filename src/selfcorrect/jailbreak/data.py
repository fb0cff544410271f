"""Harmful-behaviour data: vendored AdvBench, or any CSV/JSONL with a goal column."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from selfcorrect.datafiles import (
    DataError,
    RowProblem,
    read_csv,
    read_jsonl,
    require_rows,
    vendored,
)


@dataclass(frozen=True)
class Behaviour:
    uid: str  # "<file stem>:<line>"
    goal: str
    target: str  # the affirmative start an attack optimises for ("Sure, here is ...")


def behaviours_file(path: str | Path | None = None) -> Path:
    """The behaviours file `load_behaviours` reads: `path`, or the vendored AdvBench CSV."""
    return Path(path) if path is not None else vendored("advbench", "harmful_behaviors.csv")


def load_behaviours(
    path: str | Path | None = None,
    *,
    goal_column: str = "goal",
    target_column: str | None = "target",
    limit: int | None = 100,
    strict: bool = False,
) -> tuple[list[Behaviour], list[RowProblem]]:
    """Behaviours from `path` (default: AdvBench, whose first 100 the paper uses)."""
    file = behaviours_file(path)
    if limit is not None and limit < 1:
        raise DataError(f"limit must be >= 1, got {limit}")
    required = (goal_column,) + ((target_column,) if target_column else ())
    if file.suffix == ".jsonl":
        rows, problems = read_jsonl(file, strict=strict)
        good = []
        for line, obj in rows:
            missing = [c for c in required if not isinstance(obj.get(c), str) or not obj[c].strip()]
            if missing:
                problem = RowProblem(
                    str(file), line, f"missing or empty field(s) {', '.join(missing)}"
                )
                if strict:
                    raise DataError(str(problem))
                problems.append(problem)
                continue
            good.append((line, {k: str(v) for k, v in obj.items()}))
    else:
        good, problems = read_csv(file, required, strict=strict)
    require_rows(file, len(good), problems, "behaviour")
    out = [
        Behaviour(
            uid=f"{file.stem}:{line}",
            goal=row[goal_column].strip(),
            target=(
                row[target_column].strip()
                if target_column
                else f"Sure, here is {row[goal_column].strip()}"
            ),
        )
        for line, row in good
    ]
    return (out[:limit] if limit else out), problems
