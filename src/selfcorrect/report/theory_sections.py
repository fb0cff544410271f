"""Report sections for the theory lab's run directories: Figure 2 panels, the explicit
construction and training runs. Every text that comes from a run is HTML-escaped by the table
helpers."""

from __future__ import annotations

import csv
from pathlib import Path

from selfcorrect.report.fmt import figures as _figures
from selfcorrect.report.fmt import read_json as _read_json
from selfcorrect.report.fmt import table as _table


def _curve_rows(path: Path) -> list[dict[str, str]]:
    """Rows of curves.csv whose numbers parse (a torn last row from a killed run is skipped)."""
    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    good = []
    for r in rows:
        try:
            float(r["error"]), float(r["stderr"])
        except (KeyError, TypeError, ValueError):
            continue
        good.append(r)
    return good


def theory_section(folder: Path) -> str:
    rows = _curve_rows(folder / "curves.csv")
    wanted = ("2", "5", "10", "15")
    keys = list(dict.fromkeys((r["predictor"], r["noise"]) for r in rows))
    table = []
    for name, noise in keys:
        vals = {r["t"]: r for r in rows if r["predictor"] == name and r["noise"] == noise}
        table.append(
            [name, noise]
            + [
                f"{float(vals[t]['error']):.3f} ± {float(vals[t]['stderr']):.3f}"
                if t in vals
                else ""
                for t in wanted
            ]
        )
    return (
        "<p>Error 1 − cos(ŷ_t, y*) on the fixed seeded evaluation set.</p>"
        + _table(["predictor", "noise p"] + [f"t = {t}" for t in wanted], table, left=2)
        + _figures(folder)
    )


def construct_section(folder: Path) -> str:
    t = _read_json(folder / "construct.json")
    rows = [
        (
            "PL" if case == "by_beta" else "BT (N=2)",
            r["steps"],
            f"{r['beta']:g}",
            f"{r['max_abs_error']:.2e}",
        )
        for case in ("by_beta", "bt")
        for r in t[case]
    ]
    abl = [(r["variant"], f"{r['max_abs_error']:.2e}") for r in t["ablations"]]
    return (
        f"<p>d = {t['d']}, N = {t['n']}, eta = {t['eta']}, {t['problems']} problems, {t['dtype']}, "
        f"min reward gap {t['min_reward_gap']:.4f}.</p>"
        + _table(["case", "steps", "beta", "max |TF − GD|"], rows)
        + "<h3>Ablations (1 step)</h3>"
        + _table(["variant", "max |TF − GD|"], abl)
        + _figures(folder)
    )


def training_section(folder: Path) -> str:
    with open(folder / "train_log.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    evals = [r for r in rows if r.get("eval_error_t")]
    last = rows[-1] if rows else {}
    summary = [
        ("steps done", last.get("step", 0)),
        ("training seconds", last.get("seconds", "")),
        ("last loss", last.get("loss", "")),
        ("last evaluation error at t = 15", evals[-1]["eval_error_t"] if evals else ""),
    ]
    return _table(["", ""], summary, left=2) + _figures(folder)
