"""Named behaviour sets for ``--data``: AdvBench (the paper's), HarmBench's standard text
behaviours, JBB-Behaviors and StrongREJECT's forbidden prompts, all vendored; any other value is
a CSV/JSONL path read by `load_behaviours`."""

from __future__ import annotations

from pathlib import Path

from selfcorrect.datafiles import RowProblem, read_csv, vendored
from selfcorrect.jailbreak.data import Behaviour, load_behaviours

BEHAVIOUR_SETS = {
    "advbench": "AdvBench harmful behaviours (520; the paper uses the first 100)",
    "harmbench": "HarmBench text behaviours, test split, the 159 standard ones (no context)",
    "jbb": "JBB-Behaviors, 100 harmful behaviours with targets",
    "strongreject": "StrongREJECT's 313 forbidden prompts (no targets: 'Sure, here is <goal>')",
}


def _rows(file: Path, goal: str, target: str | None, keep: str | None = None) -> list[Behaviour]:
    required = (goal,) + ((target,) if target else ())
    rows, _ = read_csv(file, required + (("FunctionalCategory",) if keep else ()), strict=True)
    out = []
    for line, r in rows:
        if keep and r["FunctionalCategory"] != keep:
            continue
        g = r[goal].strip()
        out.append(
            Behaviour(
                uid=f"{file.stem}:{line}",
                goal=g,
                target=r[target].strip() if target else f"Sure, here is {g}",
            )
        )
    return out


SET_FILES = {
    "advbench": ("advbench", "harmful_behaviors.csv"),
    "harmbench": ("harmbench", "harmbench_behaviors_text_test.csv"),
    "jbb": ("jailbreakbench", "harmful-behaviors.csv"),
    "strongreject": ("strongreject", "strongreject_dataset.csv"),
}


def set_file(data: str | Path | None) -> Path:
    """The file a named set (or a path) reads: the run fingerprints its content."""
    name = str(data) if data is not None else "advbench"
    return vendored(*SET_FILES[name]) if name in SET_FILES else Path(name)


def behaviours(
    data: str | Path | None,
    *,
    goal_column: str = "goal",
    target_column: str | None = "target",
    limit: int | None = 100,
) -> tuple[list[Behaviour], list[RowProblem]]:
    """A named set (`BEHAVIOUR_SETS`) or a file; the first `limit` behaviours."""
    name = str(data) if data is not None else "advbench"
    if name == "advbench":
        return load_behaviours(None, limit=limit)
    if name == "harmbench":
        out = _rows(
            vendored("harmbench", "harmbench_behaviors_text_test.csv"),
            "Behavior",
            None,
            keep="standard",
        )
    elif name == "jbb":
        out = _rows(vendored("jailbreakbench", "harmful-behaviors.csv"), "Goal", "Target")
    elif name == "strongreject":
        out = _rows(vendored("strongreject", "strongreject_dataset.csv"), "forbidden_prompt", None)
    else:
        return load_behaviours(
            data, goal_column=goal_column, target_column=target_column, limit=limit
        )
    if limit is not None and limit < 1:
        raise ValueError(f"limit must be >= 1, got {limit}")
    return (out[:limit] if limit else out), []
