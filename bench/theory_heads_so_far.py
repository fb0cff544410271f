"""Panel 2e before all its models are trained: the head counts trained so far, scored on the
panel's 1,024 evaluation sequences, and the paired z of "3 heads beat N heads" for each.

    .venv/bin/python bench/theory_heads_so_far.py --models runs/theory/paper/models

Reads each finished ``L20-H<h>-E<32h>-softmax-ours-s4000-b64-lr0.0003-seed0`` model (the
`paper` preset's 2e variants), writes ``bench/results/theory_paper/2e_so_far.json`` (error and
standard error at t = 15 per head count, each model's wall time, and the comparisons) and prints
them. `selfcorrect theory figure 2e --preset paper` supersedes it once every head count is in.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from selfcorrect.theory.evaluate import score
from selfcorrect.theory.train import load_trained
from selfcorrect.theory.verdicts import Measured, compare, mean_and_stderr

HEADS = (1, 3, 4, 6)
T = 15


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--models", type=Path, default=Path("runs/theory/paper/models"))
    parser.add_argument("--n-eval", type=int, default=1024)
    parser.add_argument(
        "--out", type=Path, default=Path("bench/results/theory_paper/2e_so_far.json")
    )
    args = parser.parse_args()
    torch.set_num_threads(1)
    models, missing = {}, []
    for h in HEADS:
        path = args.models / f"L20-H{h}-E{32 * h}-softmax-ours-s4000-b64-lr0.0003-seed0"
        trained = load_trained(path) if (path / "checkpoint.pt").is_file() else None
        if trained is None or not trained.finished:
            missing.append(h)
            continue
        manifest = json.loads((path / "manifest.json").read_text())
        models[h] = (trained.model, manifest.get("seconds"), manifest.get("torch_threads"))
    label = {h: f"{h} head{'s' if h > 1 else ''}" for h in HEADS}
    predictors = {label[h]: m for h, (m, _, _) in models.items()}
    scored = score(predictors, n_eval=args.n_eval, n_dims=5, n_points=20)
    errors = {s.predictor: tuple(s.errors[:, T].tolist()) for s in scored}
    measured = {k: Measured(*mean_and_stderr(v), v) for k, v in errors.items()}
    result = {
        "t": T,
        "n_eval": args.n_eval,
        "missing_head_counts": missing,
        "errors": {
            k: {
                "error": m.error,
                "stderr": m.stderr,
                "train_seconds": models[int(k.split()[0])][1],
                "torch_threads": models[int(k.split()[0])][2],
            }
            for k, m in measured.items()
        },
        "three_heads_lower_than": {},
    }
    for label, m in measured.items():
        if label != "3 heads" and "3 heads" in measured:
            c = compare(measured["3 heads"], m)
            result["three_heads_lower_than"][label] = {"outcome": c.outcome, "z_paired": c.z}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
