"""Collect the paper-scale Figure 2 panels into one results file and the README's table.

    .venv/bin/python bench/theory_panels_table.py [--root runs/theory/paper]

Reads each panel's run directory (``<root>/<panel>/metrics.json``, written by
``selfcorrect theory figure <panel> --preset paper``), writes
``bench/results/theory_paper_panels.json`` (errors with standard errors at t = 2, 5, 10, 15,
each model's steps and wall time, and which models are still missing), prints the markdown
table, and copies the figures to ``docs/img/theory_figure_<panel>_paper.png``. Models that have
not finished training are listed from ``<root>/models/*/manifest.json``.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

PAPER_TF = {2: 0.519, 5: 0.336, 10: 0.307, 15: 0.297}  # PAPER.md section 3, p = 0
PAPER_GD = {2: 0.385, 5: 0.328, 10: 0.306, 15: 0.298}
PAPER_NOISE_T15 = {0.5: (0.624, 0.467)}  # (TF, GD)


def fmt(cell: list[float] | None) -> str:
    return "" if cell is None else f"{cell[0]:.3f} ± {cell[1]:.3f}"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--root", default="runs/theory/paper")
    parser.add_argument("--out", default="bench/results/theory_paper_panels.json")
    parser.add_argument("--img", default="docs/img")
    args = parser.parse_args()
    root = Path(args.root)
    panels: dict[str, dict] = {}
    for metrics in sorted(root.glob("2*/metrics.json")):
        panel = metrics.parent.name
        panels[panel] = json.loads(metrics.read_text())
        png = metrics.parent / f"figure_{panel}.png"
        if png.exists():
            shutil.copy(png, Path(args.img) / f"theory_figure_{panel}_paper.png")
    models = {}
    for manifest in sorted(root.glob("models/*/manifest.json")):
        m = json.loads(manifest.read_text())
        models[manifest.parent.name] = {
            "finished": "finished" in m,
            "steps_done": m.get("steps_done"),
            "seconds": m.get("seconds"),
            "eval_error_t15": m.get("eval_error_t"),
        }
    Path(args.out).write_text(json.dumps({"panels": panels, "models": models}, indent=2) + "\n")
    print(
        "| panel | model / predictor | noise p | t = 2 | t = 5 | t = 10 | t = 15 | train wall time |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for panel, data in panels.items():
        for name, by_noise in data["error_stderr"].items():
            train = data["training"].get(name)
            wall = f"{train['seconds'] / 60:.0f} min ({train['steps_done']} steps)" if train else ""
            for noise, by_t in by_noise.items():
                cells = [fmt(by_t.get(str(t))) for t in (2, 5, 10, 15)]
                print(f"| {panel} | {name} | {noise} | {' | '.join(cells)} | {wall} |")
    print()
    for name, m in models.items():
        print(
            f"{name}: {'finished' if m['finished'] else 'NOT finished'}, "
            f"{m['steps_done']} steps, {m['seconds']} s, error at t=15 {m['eval_error_t15']}"
        )


if __name__ == "__main__":
    main()
