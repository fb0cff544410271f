"""Figures in one consistent style (matplotlib, Agg), saved as PNG and SVG.

Palette: Okabe-Ito (colour-blind safe). Every axis is labelled, every line named in a legend.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
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
            # Labels hold run data (category names, model specs): never parse $...$ as maths.
            "text.usetex": False,
            "text.parse_math": False,
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


def ablation_plot(summary: dict[str, Any], out: Path) -> list[Path]:
    """Figure 4 style: gain vs check accuracy (check-quality), accuracy vs rounds (rounds),
    or gain per check type / model (bars)."""
    plt = _plt()
    kind, points = summary["kind"], summary["points"]
    fig, ax = plt.subplots(figsize=(5.5, 4))
    if kind == "check-quality":
        xs = [p["check_accuracy"] for p in points]
        ys = [p["gain"] for p in points]
        ax.scatter(xs, ys, color=OKABE_ITO[0], zorder=3, label="oracle checks (one run each)")
        for p in points:
            ax.annotate(
                p["check"],
                (p["check_accuracy"], p["gain"]),
                fontsize=7,
                xytext=(3, 3),
                textcoords="offset points",
            )
        fit = summary.get("fit_gain_vs_check_accuracy")
        if fit:
            line_x = [0.0, 1.0]
            ax.plot(
                line_x,
                [fit["intercept"] + fit["slope"] * x for x in line_x],
                ls="--",
                color=OKABE_ITO[1],
                label=f"least squares: slope {fit['slope']:.3f}, R² {fit['r2']:.2f}",
            )
        ax.axhline(0, color="grey", lw=0.8)
        ax.set_xlabel("check accuracy (fraction of correct verdicts)")
        ax.set_ylabel("accuracy gain after CaC (fraction)")
        ax.set_title("Gain vs check quality")
        ax.legend(fontsize=8)
    elif kind == "rounds":
        p = points[0]
        xs = list(range(len(p["accuracy_by_round"])))
        errs = [_err(a, ci) for a, ci in zip(p["accuracy_by_round"], p["accuracy_ci95_by_round"])]
        ax.errorbar(
            xs,
            p["accuracy_by_round"],
            yerr=list(zip(*errs)),
            marker="o",
            capsize=3,
            color=OKABE_ITO[0],
            label=f"check: {p['check']}",
        )
        ax.set_xticks(xs)
        ax.set_xlabel("CaC round (0 = initial answer)")
        ax.set_ylabel("accuracy (fraction correct)")
        ax.set_ylim(0, 1)
        ax.set_title("Accuracy vs rounds")
        ax.legend()
    else:
        shown = {"check-type": "check", "intrinsic-vs-oracle": "label"}.get(kind, "model")
        labels = [p[shown] for p in points]
        gains = [p["gain"] or 0.0 for p in points]
        ax.bar(
            range(len(points)),
            gains,
            color=[OKABE_ITO[i % len(OKABE_ITO)] for i in range(len(points))],
        )
        ax.set_xticks(range(len(points)), labels, rotation=20, ha="right")
        ax.axhline(0, color="grey", lw=0.8)
        ax.set_ylabel("accuracy gain after CaC (fraction)")
        ax.set_title(
            {
                "check-type": "Gain by check type",
                "intrinsic-vs-oracle": "Gain: intrinsic vs oracle-stopped",
            }.get(kind, "Gain by model (smallest first)")
        )
    return save(fig, out, f"ablation_{kind.replace('-', '_')}")


def theory_panel(
    rows: list[dict[str, Any]],
    panel: str,
    title: str,
    out: Path,
    references: Sequence[tuple[str, Mapping[int, float]]] = (),
) -> list[Path]:
    """Error vs number of in-context examples, one line per predictor (and noise level), and
    published reference points (label, {t: error}) as hollow markers."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5.5, 4))
    keys: list[tuple[str, float]] = []
    for r in rows:
        if (r["predictor"], r["noise"]) not in keys:
            keys.append((r["predictor"], r["noise"]))
    many_noise = len({k[1] for k in keys}) > 1
    for i, (name, noise) in enumerate(keys):
        pts = sorted(
            (r["t"], r["error"], r["stderr"])
            for r in rows
            if r["predictor"] == name and r["noise"] == noise
        )
        label = f"{name}, p = {noise:g}" if many_noise else name
        style = (
            "--" if name.startswith("GD") else (":" if "least" in name or "best" in name else "-")
        )
        ax.errorbar(
            [p[0] for p in pts],
            [p[1] for p in pts],
            yerr=[p[2] for p in pts],
            ls=style,
            marker=".",
            capsize=2,
            color=OKABE_ITO[i % len(OKABE_ITO)],
            label=label,
        )
    for j, (name, points) in enumerate(references):
        ts = sorted(points)
        ax.plot(
            ts,
            [points[t] for t in ts],
            ls="none",
            marker="os"[j % 2],
            mfc="none",
            color="black",
            label=name,
        )
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("in-context examples t")
    ax.set_ylabel("error 1 - cos(ŷ_t, y*)")
    ax.set_ylim(bottom=0)
    ax.set_title(f"Figure {panel}: {title}")
    ax.legend(fontsize=7)
    return save(fig, out, f"figure_{panel}")


def construction_plots(table: dict[str, Any], out: Path) -> list[Path]:
    """max |TF - GD| vs beta (per steps), the ablations, and the noise sweep."""
    plt = _plt()
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    ax = axes[0]
    for i, t in enumerate(sorted({r["steps"] for r in table["by_beta"]})):
        rows = [r for r in table["by_beta"] if r["steps"] == t]
        ax.loglog(
            [r["beta"] for r in rows],
            [max(r["max_abs_error"], 1e-17) for r in rows],
            marker="o",
            color=OKABE_ITO[i],
            label=f"PL, N={table['n']}, {t} step{'s' if t > 1 else ''}",
        )
        bt = [r for r in table["bt"] if r["steps"] == t]
        ax.loglog(
            [r["beta"] for r in bt],
            [max(r["max_abs_error"], 1e-17) for r in bt],
            marker="s",
            ls="--",
            color=OKABE_ITO[i],
            label=f"BT (N=2), {t} step{'s' if t > 1 else ''}",
        )
    ax.set_xlabel("selection sharpness β")
    ax.set_ylabel("max |TF − GD| over problems")
    ax.set_title("Constructed network vs explicit GD")
    ax.legend(fontsize=7)
    ax = axes[1]
    ab = table["ablations"]
    ax.bar(range(len(ab)), [max(r["max_abs_error"], 1e-17) for r in ab], color=OKABE_ITO[: len(ab)])
    ax.set_yscale("log")
    ax.set_xticks(range(len(ab)), [r["variant"] for r in ab], rotation=25, ha="right", fontsize=8)
    ax.set_ylabel("max |TF − GD| (1 step)")
    ax.set_title(f"Ablations at β = {ab[0]['beta']:g}")
    ax = axes[2]
    noise = table.get("noise", [])
    ax.errorbar(
        [r["noise"] for r in noise],
        [r["error_vs_y_star"] for r in noise],
        yerr=[r["stderr"] for r in noise],
        marker="o",
        color=OKABE_ITO[0],
        label="constructed network (= GD on the noisy ranking)",
    )
    ax.set_xlabel("reward noise p")
    ax.set_ylabel("error 1 − cos(ŷ, y*)")
    ax.set_title("Noisy rewards: GD on the wrong ranking")
    ax.legend(fontsize=7)
    return save(fig, out, "construction")


def asr_plot(metrics: dict[str, Any], out: Path) -> list[Path]:
    """Attack success rate per defence, initial vs final answer, one panel per judge."""
    plt = _plt()
    defenses = list(metrics["defenses"])
    judges = list(next(iter(metrics["defenses"].values()))["judges"])
    fig, axes = plt.subplots(1, len(judges), figsize=(4.5 * len(judges), 3.8), squeeze=False)
    for ax, j in zip(axes[0], judges):
        for k, when in enumerate(("initial", "final")):
            vals = [metrics["defenses"][d]["judges"][j][f"asr_{when}"] or 0.0 for d in defenses]
            ax.bar(
                [i + (k - 0.5) * 0.38 for i in range(len(defenses))],
                vals,
                0.38,
                color=OKABE_ITO[k],
                label=f"{when} answer",
            )
        ax.set_xticks(range(len(defenses)), defenses, rotation=25, ha="right")
        ax.set_ylim(0, 1)
        ax.set_ylabel("attack success rate (fraction)")
        ax.set_title(f"judge: {j}")
        ax.legend(fontsize=8)
    return save(fig, out, "asr_by_defense")


def _training_log(path: Path) -> list[dict[str, str]]:
    import csv

    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def training_curves(log: Path, out: Path) -> list[Path]:
    """Training loss and evaluation error (at t = 15) against step, from ``train_log.csv``."""
    plt = _plt()
    rows = _training_log(log)
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.6))
    steps = [int(r["step"]) for r in rows]
    left.plot(steps, [float(r["loss"]) for r in rows], color=OKABE_ITO[0], lw=0.8)
    left.set_xlabel("step")
    left.set_ylabel("training PL loss")
    evals = [(int(r["step"]), float(r["eval_error_t"])) for r in rows if r.get("eval_error_t")]
    right.plot([s for s, _ in evals], [e for _, e in evals], marker=".", color=OKABE_ITO[1])
    right.set_xlabel("step")
    right.set_ylabel("evaluation error at t = 15")
    right.set_ylim(bottom=0)
    fig.suptitle(f"Training run {out.name}")
    return save(fig, out, "training")


def tradeoff_plot(metrics: dict[str, Any], out: Path) -> list[Path]:
    """Attack success (final answer) against over-refusal on XSTest's safe prompts, one point
    per defence and judge: the trade-off a user chooses on (lower left is better)."""
    plt = _plt()
    rows = metrics["defenses"]
    judges = list(metrics.get("judges") or next(iter(rows.values()))["judges"])
    fig, ax = plt.subplots(figsize=(6.2, 4.4))
    markers = "osD^vP*X"
    for k, j in enumerate(judges):
        for i, (key, row) in enumerate(rows.items()):
            over = (row.get("over_refusal") or {}).get("refusal_rate")
            asr = row["judges"][j]["asr_final"]
            if over is None or asr is None:
                continue
            ax.scatter(
                over,
                asr,
                color=OKABE_ITO[i % len(OKABE_ITO)],
                marker=markers[k % len(markers)],
                s=46,
                label=f"{key} · {j}",
            )
    ax.set_xlim(-0.03, 1.03)
    ax.set_ylim(-0.03, 1.03)
    ax.set_xlabel(f"over-refusal on XSTest safe prompts ({metrics.get('over_refusal_judge')})")
    ax.set_ylabel("attack success rate, final answer")
    ax.set_title("Attack success vs over-refusal per defence")
    if ax.get_legend_handles_labels()[0]:  # nothing plotted (no rate yet): no legend to draw
        ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    return save(fig, out, "asr_vs_over_refusal")
