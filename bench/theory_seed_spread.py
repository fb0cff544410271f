"""Do the paper-scale verdicts survive another training seed?

Every paper-scale verdict that compares two trained models rests on one training seed per model
(seed 0), and its paired z measures only the evaluation noise of *those* models. This script
retrains chosen variants of the `paper` preset from another seed (same recipe, same steps; the
seed sets both the initialisation and the training stream), scores every seed of every variant
on the panel's 1,024 evaluation sequences, and reports

- per variant, the seed-to-seed difference at t = 15 (paired z of seed 1 against seed 0): how far
  one architecture moves when only the seed changes;
- per claim the verdicts contradicted (depth: "5 layers beat 15"; FFN: "the official no-FFN block
  beats the base model"), the paired z for every combination of trained seeds.

    .venv/bin/python bench/theory_seed_spread.py --root runs/theory/paper --train --threads 2

Training resumes from checkpoints (rerun the same command); without ``--train`` it scores what is
trained. Writes ``bench/results/theory_paper/seeds/seed_spread.json`` and prints it.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from itertools import product
from pathlib import Path

import torch

from selfcorrect.theory.evaluate import score
from selfcorrect.theory.figures import load_grid, load_preset, model_dir, trained, variants
from selfcorrect.theory.train import load_trained
from selfcorrect.theory.verdicts import VERDICT_T, Measured, compare, mean_and_stderr

# (panel, label) of each variant, in training order (cheapest first)
VARIANTS = (
    ("2c", "5 layers"),
    ("2f", "without FFN, ln_2 kept (official block)"),
    ("2c", "20 layers"),
    ("2c", "15 layers"),
)
# claims as the verdicts state them: (claim, lower, higher) means "lower has the lower error"
CLAIMS = (
    ("5 layers beat 15 (depth does not saturate near 15)", "5 layers", "15 layers"),
    (
        "the official no-FFN block beats the base model (FFN not needed)",
        "without FFN, ln_2 kept (official block)",
        "20 layers",
    ),
)


def configs(seeds: list[int]):
    base, grid = load_preset("paper"), load_grid("paper")
    found = {}
    for panel, label in VARIANTS:
        cfg = dict(variants(panel, base, grid))[label]
        found[label] = {seed: replace(cfg, seed=seed) for seed in seeds}
    return found, grid.n_eval


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--root", type=Path, default=Path("runs/theory/paper"))
    parser.add_argument("--seeds", default="0,1", help="training seeds, comma-separated")
    parser.add_argument("--train", action="store_true", help="train missing seeds (resumes)")
    parser.add_argument("--only", default="", help="train only these labels ('|'-separated)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--out", type=Path, default=Path("bench/results/theory_paper/seeds/seed_spread.json")
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    seeds = [int(s) for s in args.seeds.split(",")]
    wanted = set(filter(None, args.only.split("|")))
    cfgs, n_eval = configs(seeds)

    models, runs = {}, {}
    for label, by_seed in cfgs.items():
        for seed, cfg in by_seed.items():
            out = model_dir(args.root, cfg)
            if args.train and (not wanted or label in wanted):
                print(f"training {label} seed {seed} -> {out}", flush=True)
                model, _ = trained(args.root, cfg, progress=True)
            else:
                found = load_trained(out) if (out / "checkpoint.pt").is_file() else None
                if found is None or not found.finished:
                    continue
                model = found.model
            manifest = json.loads((out / "manifest.json").read_text())
            models[(label, seed)] = model
            runs[f"{label} / seed {seed}"] = {
                "dir": out.name,
                "train_seconds": manifest.get("seconds"),
                "torch_threads": manifest.get("torch_threads"),
            }

    t = VERDICT_T
    scored = score(
        {f"{label} / seed {seed}": m for (label, seed), m in models.items()},
        n_eval=n_eval,
        n_dims=5,
        n_points=20,
    )
    measured = {}
    for s in scored:
        values = tuple(s.errors[:, t].tolist())
        measured[s.predictor] = Measured(*mean_and_stderr(values), values)

    def at(label: str, seed: int) -> Measured | None:
        return measured.get(f"{label} / seed {seed}")

    spread = {}
    for label in cfgs:
        first = at(label, seeds[0])
        for seed in seeds[1:]:
            other = at(label, seed)
            if first and other:
                c = compare(first, other)  # z > 0: seed `seed` has the higher error
                spread[f"{label}: seed {seed} - seed {seeds[0]}"] = {
                    "difference": other.error - first.error,
                    "z_paired": c.z,
                }
    claims = {}
    for claim, lower, higher in CLAIMS:
        rows = {}
        for s_lo, s_hi in product(seeds, seeds):
            a, b = at(lower, s_lo), at(higher, s_hi)
            if a and b:
                c = compare(a, b)
                rows[f"{lower} seed {s_lo} vs {higher} seed {s_hi}"] = {
                    "difference": b.error - a.error,
                    "z_paired": c.z,
                    "outcome": c.outcome,
                }
        claims[claim] = rows
    result = {
        "t": t,
        "n_eval": n_eval,
        "seeds": seeds,
        "errors": {k: {"error": m.error, "stderr": m.stderr} for k, m in measured.items()},
        "runs": runs,
        "seed_to_seed": spread,
        "claims": claims,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
