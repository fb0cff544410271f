"""Time to reach error <= 0.32 at t = 15 with the paper model: our recipe against the paper's.

    .venv/bin/python bench/bench_time_to_target.py [--set batch_size=64] [--target 0.32]

Both recipes train the paper preset's model (96 wide, 20 layers, 3 heads) with our
implementation (`--set` overrides our recipe, e.g. its batch size; the paper recipe is fixed), evaluated every `--eval-every` steps on the fixed evaluation set; each stops at
the first evaluation at or below the target. `seconds` is training wall time, evaluations
included. The paper recipe (Adam, constant lr 1e-4) is capped at `--paper-cap` steps; its lr does
not depend on the step budget, so the cap does not change its trajectory. The same run also
times a training step of the original implementation's approach (bench_theory.OriginalStyle) so
the paper recipe as originally implemented can be projected: its steps to target x that step time.

Runs resume (the model directories live under `--runs`), so a killed benchmark continues.
`--report-only` reports from the logs as they stand (a recipe stopped short counts as not
reached, and the ratio becomes a bound).
"""

from __future__ import annotations

import argparse
import csv
import json
from dataclasses import replace
from pathlib import Path

import torch
from bench_theory import OriginalStyle, loop_pl_loss, step_time

from selfcorrect.theory.figures import load_preset
from selfcorrect.theory.losses import pl_loss_prefixes
from selfcorrect.theory.model import AlignmentTransformer
from selfcorrect.theory.train import train


def curve(model_dir: Path) -> list[tuple[int, float, float]]:
    """(step, error at t, training seconds) for every evaluated step of a train_log.csv."""
    with open(model_dir / "train_log.csv") as fh:
        return [
            (int(r["step"]), float(r["eval_error_t"]), float(r["seconds"]))
            for r in csv.DictReader(fh)
            if r["eval_error_t"]
        ]


def run_recipe(
    preset: str,
    runs: Path,
    target: float,
    eval_every: int,
    cap: int | None,
    *,
    report_only: bool,
    sets: list[str] | None = None,
) -> dict:
    cfg = replace(load_preset(preset, sets), eval_every=eval_every, checkpoint_every=eval_every)
    if cap is not None:
        cfg = replace(cfg, steps=min(cfg.steps, cap))
    out = runs / "-".join([preset, *(sets or [])])
    done = (out / "train_log.csv").exists() and any(e <= target for _, e, _ in curve(out))
    if not (report_only or done):  # a rerun does not train past a target already reached
        train(cfg, out, stop_below=target)
    points = curve(out)
    hit = next((p for p in points if p[1] <= target), None)
    last = points[-1]
    return {
        "preset": preset,
        "recipe": cfg.recipe,
        "lr": cfg.lr,
        "overrides": sets or [],
        "reached": hit is not None,
        "steps": (hit or last)[0],
        "seconds": round((hit or last)[2], 1),
        "error": (hit or last)[1],
        "curve": [{"step": s, "error": e, "seconds": t} for s, e, t in points],
    }


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 3.8))
    sets = results["ours"]["overrides"]
    ours_label = "our recipe" + (f" ({', '.join(sets)})" if sets else "")
    for key, label in (("ours", ours_label), ("paper", "paper recipe (our implementation)")):
        pts = results[key]["curve"]
        ax.plot(
            [p["seconds"] / 60 for p in pts], [p["error"] for p in pts], marker=".", label=label
        )
    step_s = results["step_s"]["original_style"]
    pts = results["paper"]["curve"]
    ax.plot(
        [p["step"] * step_s / 60 for p in pts],
        [p["error"] for p in pts],
        ls=":",
        marker=".",
        label=f"paper recipe, original implementation (projected: steps x {step_s:.1f} s)",
    )
    ax.axhline(results["target"], color="grey", ls="--", lw=1, label=f"target {results['target']}")
    ax.set_xlabel("training wall time on this CPU (min)")
    ax.set_ylabel("error at t = 15")
    ax.set_title("Paper model (96 wide, 20 layers, 3 heads): time to target")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--target", type=float, default=0.32)
    parser.add_argument("--eval-every", type=int, default=50)
    parser.add_argument("--paper-cap", type=int, default=3000)
    parser.add_argument("--timing-steps", type=int, default=3)
    parser.add_argument("--runs", default="runs/bench/time_to_target")
    parser.add_argument("--out", default="bench/results/time_to_target.json")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        help="Override for our recipe (paper preset), e.g. --set lr=0.001 --set warmup=50.",
    )
    parser.add_argument(
        "--report-only",
        action="store_true",
        help="Train nothing: time the steps and report from the training logs as they stand "
        "(e.g. after stopping the paper recipe short of its cap; it then counts as not reached).",
    )
    args = parser.parse_args()
    runs = Path(args.runs)
    results: dict = {"threads": torch.get_num_threads(), "target": args.target}
    torch.manual_seed(0)
    model_cfg = load_preset("paper").model
    original_step = step_time(OriginalStyle(), loop_pl_loss, args.timing_steps)
    our_step = step_time(AlignmentTransformer(model_cfg), pl_loss_prefixes, args.timing_steps)
    results["step_s"] = {"original_style": round(original_step, 3), "ours": round(our_step, 3)}
    common = {"report_only": args.report_only}
    results["ours"] = run_recipe(
        "paper", runs, args.target, args.eval_every, None, sets=args.set, **common
    )
    results["paper"] = run_recipe(
        "paper-recipe", runs, args.target, args.eval_every, args.paper_cap, **common
    )
    ours_s, paper_s = results["ours"]["seconds"], results["paper"]["seconds"]
    # a recipe that stopped short of the target only bounds the ratio (both short: no ratio)
    bound = {(True, True): "", (True, False): ">= ", (False, True): "<= ", (False, False): None}[
        (results["ours"]["reached"], results["paper"]["reached"])
    ]

    def ratio(x: float) -> str:
        return "n/a" if bound is None else f"{bound}{x:.2f}"

    results["ratio_recipe"] = ratio(paper_s / ours_s)
    projected = results["paper"]["steps"] * original_step
    results["paper_original_projected_s"] = round(projected, 1)
    results["ratio_vs_original"] = ratio(projected / ours_s)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    plot(results, out.with_suffix(".png"))
    print(json.dumps({k: v for k, v in results.items() if k not in ("ours", "paper")}, indent=2))
    for key in ("ours", "paper"):
        r = results[key]
        print(key, {k: r[k] for k in ("reached", "steps", "seconds", "error")})


if __name__ == "__main__":
    main()
