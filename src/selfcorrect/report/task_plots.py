"""Figures of task runs (`selfcorrect task`): accuracy and tokens per round, and accuracy
against generated tokens for self-correction modes and self-consistency."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from selfcorrect.report.plots import OKABE_ITO, _err, _plt, save


def task_plots(metrics: dict[str, Any], out: Path) -> list[Path]:
    """Accuracy (95% Wilson intervals) and unscored share per round; generated tokens per
    question per round, split into answers and checks."""
    plt = _plt()
    rounds = metrics["per_round"]
    xs = [r["round"] for r in rounds]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8))
    errs = [_err(r["accuracy"], r["accuracy_ci95"]) for r in rounds]
    left.errorbar(
        xs,
        [r["accuracy"] or 0.0 for r in rounds],
        yerr=list(zip(*errs)),
        marker="o",
        capsize=3,
        color=OKABE_ITO[0],
        label="accuracy",
    )
    left.plot(
        xs,
        [r["unscored_rate"] or 0.0 for r in rounds],
        marker="s",
        ls="--",
        color=OKABE_ITO[3],
        label="unscored (counted wrong)",
    )
    left.set_xticks(xs)
    left.set_xlabel("round (0 = first answer)")
    left.set_ylabel("fraction of questions")
    left.set_ylim(0, 1)
    left.set_title(f"Accuracy by round (n = {metrics['n']}, stop: {metrics.get('stop', 'never')})")
    left.legend()
    tokens = metrics["tokens_per_question"]
    answer = [t["answer_tokens_mean"] for t in tokens]
    check = [t["check_tokens_mean"] for t in tokens]
    right.bar(xs, answer, color=OKABE_ITO[0], label="answers")
    right.bar(xs, check, bottom=answer, color=OKABE_ITO[1], label="checks")
    right.set_xticks(xs)
    right.set_xlabel("round (0 = first answer)")
    right.set_ylabel("generated tokens per question (mean)")
    right.set_title("Compute per round")
    right.legend()
    return save(fig, out, "task_rounds")


def compare_plot(summary: dict[str, Any], out: Path) -> list[Path]:
    """Accuracy against mean generated tokens per question: one line per self-correction mode
    (a point per round) and the self-consistency curve (a point per k, the chosen k ringed)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 4.2))
    for i, row in enumerate(summary["modes"]):
        ax.plot(
            row["tokens_by_round"],
            [a or 0.0 for a in row["accuracy_by_round"]],
            marker="o",
            color=OKABE_ITO[i % len(OKABE_ITO)],
            label=f"{row['mode']} (rounds 0-{row['rounds']})",
        )
    sc = summary.get("self_consistency")
    if sc:
        points = sc["curve"]
        ax.plot(
            [p["tokens_per_question"] for p in points],
            [p["accuracy"] or 0.0 for p in points],
            marker="^",
            ls="--",
            color=OKABE_ITO[5],
            label=f"self-consistency (k = 1-{len(points)})",
        )
        ax.scatter(
            [sc["tokens_per_question"]],
            [sc["accuracy"] or 0.0],
            s=160,
            facecolors="none",
            edgecolors=OKABE_ITO[7],
            label=f"self-consistency, chosen k = {sc['k']}",
        )
    ax.set_xlabel("generated tokens per question (mean, cumulated)")
    ax.set_ylabel("accuracy (fraction correct)")
    ax.set_ylim(0, 1)
    ax.set_title("Accuracy against compute")
    ax.legend(fontsize=8)
    return save(fig, out, "accuracy_vs_tokens")


def sc_plot(metrics: dict[str, Any], out: Path) -> list[Path]:
    """Self-consistency accuracy (95% Wilson intervals) against the number of samples k."""
    plt = _plt()
    points = metrics["curve"]
    fig, ax = plt.subplots(figsize=(5, 3.6))
    errs = [_err(p["accuracy"], p["accuracy_ci95"]) for p in points]
    ax.errorbar(
        [p["k"] for p in points],
        [p["accuracy"] or 0.0 for p in points],
        yerr=list(zip(*errs)),
        marker="^",
        capsize=3,
        color=OKABE_ITO[5],
        label=f"majority of k samples (T = {metrics['temperature']:g})",
    )
    ax.axvline(metrics["k"], color="grey", lw=0.8, ls=":", label=f"chosen k = {metrics['k']}")
    ax.set_xlabel("samples k")
    ax.set_ylabel("accuracy (fraction correct)")
    ax.set_ylim(0, 1)
    ax.set_title(f"Self-consistency (n = {metrics['n']})")
    ax.legend(fontsize=8)
    return save(fig, out, "sc_accuracy_vs_k")
