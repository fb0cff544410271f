"""Figures in one consistent style (matplotlib, Agg), saved as PNG and SVG.

Palette: Okabe-Ito (colour-blind safe). Every axis is labelled, every line named in a legend.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

OKABE_ITO = ["#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000"]


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update(
        {
            "font.size": 10,
            "axes.titlesize": 11,
            "axes.labelsize": 10,
            "legend.fontsize": 9,
            "axes.spines.top": False,
            "axes.spines.right": False,
            "svg.fonttype": "none",
        }
    )
    return plt


def save(fig: Any, out: Path, name: str) -> list[Path]:
    """Save `fig` as <name>.png and <name>.svg in `out`; returns both paths."""
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / f"{name}.png", out / f"{name}.svg"]
    fig.tight_layout()
    fig.savefig(paths[0], dpi=150)
    fig.savefig(paths[1])
    _plt().close(fig)
    return paths


def _err(value: float | None, ci: list[float] | tuple[float, float] | None) -> tuple[float, float]:
    if value is None or not ci:
        return 0.0, 0.0
    return max(0.0, value - ci[0]), max(0.0, ci[1] - value)


def bbq_plots(metrics: dict[str, Any], out: Path) -> list[Path]:
    """Per-category accuracy before/after (Fig. 3a/b style), gain vs check accuracy
    (Fig. 3c style) and accuracy vs rounds."""
    plt = _plt()
    paths: list[Path] = []
    cats = sorted(metrics["by_category"])
    last = metrics["rounds"]

    fig, ax = plt.subplots(figsize=(max(6.0, 0.7 * len(cats) + 2), 4))
    width = 0.38 if last else 0.6
    rounds_shown = [0, last] if last else [0]
    for j, r in enumerate(rounds_shown):
        vals = [metrics["by_category"][c][r]["accuracy"] or 0.0 for c in cats]
        errs = [
            _err(
                metrics["by_category"][c][r]["accuracy"],
                metrics["by_category"][c][r]["accuracy_ci95"],
            )
            for c in cats
        ]
        xs = [i + (j - (len(rounds_shown) - 1) / 2) * width for i in range(len(cats))]
        label = "initial answer (round 0)" if r == 0 else f"after CaC (round {r})"
        ax.bar(xs, vals, width, yerr=list(zip(*errs)), capsize=2, color=OKABE_ITO[j], label=label)
    ax.set_xticks(range(len(cats)), [c.replace("_", " ") for c in cats], rotation=35, ha="right")
    ax.set_ylabel("accuracy (fraction correct)")
    ax.set_ylim(0, 1)
    ax.set_title("BBQ accuracy per category (95% Wilson intervals)")
    ax.legend(loc="upper right")
    paths += save(fig, out, "accuracy_by_category")

    fig, ax = plt.subplots(figsize=(5, 3.5))
    xs = list(range(last + 1))
    acc = [metrics["per_round"][r]["accuracy"] or 0.0 for r in xs]
    errs = [
        _err(metrics["per_round"][r]["accuracy"], metrics["per_round"][r]["accuracy_ci95"])
        for r in xs
    ]
    ax.errorbar(
        xs, acc, yerr=list(zip(*errs)), marker="o", color=OKABE_ITO[0], capsize=3, label="accuracy"
    )
    unparsed = [metrics["per_round"][r]["unparsed_rate"] or 0.0 for r in xs]
    ax.plot(xs, unparsed, marker="s", ls="--", color=OKABE_ITO[3], label="unparsed rate")
    ax.set_xticks(xs)
    ax.set_xlabel("CaC round (0 = initial answer)")
    ax.set_ylabel("fraction of questions")
    ax.set_ylim(0, 1)
    ax.set_title(f"Accuracy vs rounds (n = {metrics['n']})")
    ax.legend()
    paths += save(fig, out, "accuracy_vs_rounds")

    if last:
        points = []
        for c in cats:
            chk = metrics["check_accuracy_by_category"][c][0]["accuracy"]
            a0 = metrics["by_category"][c][0]["accuracy"]
            a1 = metrics["by_category"][c][last]["accuracy"]
            if chk is not None and a0 is not None and a1 is not None:
                points.append((c, chk, a1 - a0))
        fig, ax = plt.subplots(figsize=(5, 4))
        if points:
            ax.scatter(
                [p[1] for p in points], [p[2] for p in points], color=OKABE_ITO[0], label="category"
            )
            for c, x, y in points:
                ax.annotate(
                    c.replace("_", " "),
                    (x, y),
                    fontsize=7,
                    xytext=(3, 3),
                    textcoords="offset points",
                )
        r = _pearson([p[1] for p in points], [p[2] for p in points])
        ax.axhline(0, color="grey", lw=0.8)
        ax.set_xlabel("round-1 check accuracy (fraction of correct verdicts)")
        ax.set_ylabel(f"accuracy gain, round {last} - round 0")
        ax.set_title(
            "Gain vs check accuracy"
            + (f" (Pearson r = {r:.2f})" if r is not None else " (r undefined)")
        )
        if points:
            ax.legend()
        paths += save(fig, out, "gain_vs_check_accuracy")
    return paths


def _pearson(xs: list[float], ys: list[float]) -> float | None:
    n = len(xs)
    if n < 3:
        return None
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    syy = sum((y - my) ** 2 for y in ys)
    if sxx == 0 or syy == 0:
        return None
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / (sxx * syy) ** 0.5
