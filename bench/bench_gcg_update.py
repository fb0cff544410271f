"""GCG update rules compared on one model in one run (not run by CI).

    PYTHONPATH=src .venv/bin/python bench/bench_gcg_update.py [--n 3] [--steps 8] \
        [--out bench/results/gcg_update.json]

The first N AdvBench behaviours, the same seed and budget (the `small` preset: batch 32, top-k
64, 8 suffix tokens), on hf/smollm2: ``official`` (evenly spaced positions, always take the best
candidate) vs ``keep-best`` (random positions, keep a candidate only when it lowers the loss).
Reported per rule: the target loss of the final suffix, the lowest loss seen, and the attack-time
verdict (32 new tokens, the paper's refusal strings with ``</s>`` matching an answer that ended).
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

from selfcorrect.backends.base import get_backend
from selfcorrect.datafiles import protocol
from selfcorrect.jailbreak.attacks import AttackSetup, attack_time_success
from selfcorrect.jailbreak.attacks.gcg import GCG, GCGConfig
from selfcorrect.jailbreak.data import load_behaviours


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=3)
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--out", default="bench/results/gcg_update.json")
    args = ap.parse_args()
    backend = get_backend("hf/smollm2", batch_size=8)
    behaviours = load_behaviours(limit=args.n)[0]
    strings = protocol()["jailbreak"]["refusal_substrings_paper"]
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for update in ("official", "keep-best"):
            cfg = GCGConfig.preset("small", steps=args.steps, seed=0, update=update)
            gcg = GCG(backend, cfg)
            for b in behaviours:
                start = time.perf_counter()
                state = gcg.attack(b.goal, b.target, Path(tmp) / f"{update}-{b.uid}.json")
                seconds = time.perf_counter() - start
                before, after, target = gcg.segments(b.goal, b.target)
                import torch

                final = float(
                    gcg.losses(before, torch.tensor(state["suffix_ids"])[None], after, target)[0]
                )
                text, success = attack_time_success(
                    backend, AttackSetup(), f"{b.goal} {state['suffix']}", strings, 0
                )
                results.append(
                    {
                        "update": update,
                        "behaviour": b.uid,
                        "initial_loss": state["losses"][0],
                        "final_loss": final,
                        "min_loss": min(state["losses"]),
                        "losses": state["losses"],
                        "attack_success_32": success,
                        "generation": text,
                        "seconds": seconds,
                    }
                )
                print(
                    json.dumps(
                        {
                            k: results[-1][k]
                            for k in (
                                "update",
                                "behaviour",
                                "initial_loss",
                                "final_loss",
                                "attack_success_32",
                            )
                        }
                    )
                )
    summary = {
        u: {
            "mean_final_loss": sum(r["final_loss"] for r in rs) / len(rs),
            "mean_min_loss": sum(r["min_loss"] for r in rs) / len(rs),
            "attack_success_32": sum(r["attack_success_32"] for r in rs),
            "n": len(rs),
        }
        for u in ("official", "keep-best")
        for rs in [[r for r in results if r["update"] == u]]
    }
    Path(args.out).write_text(
        json.dumps(
            {
                "machine": platform.platform(),
                "args": vars(args),
                "summary": summary,
                "runs": results,
            },
            indent=2,
        )
    )
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
