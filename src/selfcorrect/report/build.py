"""The one report step: plots and ``report.html`` for any run directory.

Studies write data (records, metrics, curves); this step draws. What a directory holds is read
from the ``study`` field of its ``config.yaml`` (directories written before that field existed
are recognised by their files). It never calls a model or trains.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from selfcorrect.runs import read_config, read_json_file

# config.yaml's `study` -> the report's kind of section
STUDY_KINDS = {
    "bbq": "bbq",
    "bbq-ablation": "ablation",
    "jailbreak-defend": "jailbreak",
    "theory-panel": "theory",
    "theory-train": "training",
    "construct": "construct",
    "serve": "serve",
    "task": "task",
    "task-compare": "task-compare",
    "task-sc": "task-sc",
}


def study_of(folder: Path) -> str | None:
    """The `study` field of ``folder/config.yaml``, or None without one."""
    if not (folder / "config.yaml").exists():
        return None
    study = read_config(folder).get("study")
    return str(study) if study is not None else None


def kind_of(folder: Path) -> str:
    """Which report section renders `folder`."""
    study = study_of(folder)
    if study in STUDY_KINDS:
        return STUDY_KINDS[study]
    for name, kind in (
        ("ablation.json", "ablation"),
        ("construct.json", "construct"),
        ("curves.csv", "theory"),
        ("train_log.csv", "training"),
    ):
        if (folder / name).exists():
            return kind
    raise ValueError(
        f"{folder}: not a run directory this report knows (config.yaml names no known study: "
        f"{', '.join(STUDY_KINDS)})"
    )


def _json(path: Path) -> Any:
    return read_json_file(path)


def _config(folder: Path) -> dict[str, Any]:
    return read_config(folder) if (folder / "config.yaml").exists() else {}


def _draw_bbq(folder: Path) -> None:
    from selfcorrect.report.plots import bbq_plots

    bbq_plots(_json(folder / "metrics.json"), folder)


def _draw_jailbreak(folder: Path) -> None:
    from selfcorrect.report.plots import asr_plot, tradeoff_plot

    metrics = _json(folder / "metrics.json")
    asr_plot(metrics, folder)
    if any(
        (row.get("over_refusal") or {}).get("refusal_rate") is not None
        for row in metrics.get("defenses", {}).values()
    ):
        tradeoff_plot(metrics, folder)


def _draw_ablation(folder: Path) -> None:
    from selfcorrect.report.plots import ablation_plot

    ablation_plot(_json(folder / "ablation.json"), folder)


def _draw_construct(folder: Path) -> None:
    from selfcorrect.report.plots import construction_plots

    construction_plots(_json(folder / "construct.json"), folder)


def _draw_theory(folder: Path) -> None:
    from selfcorrect.report.plots import theory_panel
    from selfcorrect.theory.evaluate import read_curves
    from selfcorrect.theory.figures import PANELS, PAPER_REFERENCES

    config = _config(folder)
    panel = str(config.get("panel") or folder.name)
    theory_panel(
        read_curves(folder / "curves.csv"),
        panel,
        str(config.get("title") or PANELS.get(panel, "")),
        folder,
        references=PAPER_REFERENCES.get(panel, []),
    )


def _draw_training(folder: Path) -> None:
    from selfcorrect.report.plots import training_curves

    training_curves(folder / "train_log.csv", folder)


def _draw_task(folder: Path) -> None:
    from selfcorrect.report.task_plots import task_plots

    task_plots(_json(folder / "metrics.json"), folder)


def _draw_task_compare(folder: Path) -> None:
    from selfcorrect.report.task_plots import compare_plot

    compare_plot(_json(folder / "compare.json"), folder)


def _draw_task_sc(folder: Path) -> None:
    from selfcorrect.report.task_plots import sc_plot

    sc_plot(_json(folder / "metrics.json"), folder)


# kind -> (the data file its plots need, the drawer); no data yet: nothing to draw
DRAW: dict[str, tuple[str, Callable[[Path], None]]] = {
    "bbq": ("metrics.json", _draw_bbq),
    "jailbreak": ("metrics.json", _draw_jailbreak),
    "ablation": ("ablation.json", _draw_ablation),
    "construct": ("construct.json", _draw_construct),
    "theory": ("curves.csv", _draw_theory),
    "training": ("train_log.csv", _draw_training),
    "serve": ("", lambda folder: None),  # a table and transcripts, no plots
    "task": ("metrics.json", _draw_task),
    "task-compare": ("compare.json", _draw_task_compare),
    "task-sc": ("metrics.json", _draw_task_sc),
}


def draw(folder: Path) -> None:
    """(Re)draw the plots of one run directory from its data; nothing when it has none yet."""
    data, drawer = DRAW[kind_of(folder)]
    if data and (folder / data).is_file():
        drawer(folder)


def build_report(
    folder: str | Path, *, extra: Sequence[Path] = (), title: str | None = None
) -> Path:
    """Draw the plots of `folder` and write ``folder/report.html``; returns the page's path.

    `extra` run directories (say, an ablation's grid points) are rendered on the same page.
    """
    from selfcorrect.report.html import render_report

    root = Path(folder)
    draw(root)
    return render_report([root, *extra], root / "report.html", title=title)
