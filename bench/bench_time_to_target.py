"""Time to reach error <= 0.32 at t = 15 on the paper model, like for like, in one run.

    .venv/bin/python bench/bench_time_to_target.py [--threads 1] [--recipe NAME=KEY=V,KEY=V ...]

Contestants, all training the paper's model (96 wide, 20 layers, 3 heads) on the same task:

- ``original``: the original implementation's approach, actually trained: Hugging Face GPT-2
  backbone with its own initialisation (read-in/out: PyTorch's), the PL loss looped in Python
  over sequences and prefixes (bench_theory.loop_pl_loss), Adam at lr 1e-4, batch 256;
- one or more of our recipes (``--recipe``; default: the ``paper`` preset, i.e. our fastest
  recipe as the panels use it, the same with a slower learning-rate decay, and that with a
  curriculum over in-context examples), trained with the step functions of
  ``selfcorrect.theory.train``.

Same evaluation for all: every ``--eval-every`` steps, the error 1 - cos(y_hat, y*) at t = 15
on the fixed 256-sequence evaluation set (``train.eval_error``); a contestant stops at its first
evaluation at or below ``--target``. Its time is its wall time, evaluations included.

The machine is shared, so the contestants run interleaved in one process (``--chunk`` steps
each, round robin): the load of the moment falls on all of them alike. Load averages
are recorded at every round. Everything resumes (state under ``--runs``), so a killed benchmark
continues where it stopped; ``--report-only`` writes the results from the saved state.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from bench_theory import OriginalStyle, loop_pl_loss

from selfcorrect.theory.checkpoint import load_checkpoint, save_checkpoint
from selfcorrect.theory.evaluate import EVAL_SEED, error_curve
from selfcorrect.theory.figures import load_preset
from selfcorrect.theory.task import sample_task
from selfcorrect.theory.train import build, eval_error, lr_at, next_batch, train_step

DEFAULT_RECIPES = [
    "ours=steps=2000",  # batch 64, AdamW 3e-4, 200 warm-up steps, cosine over 2,000 steps
    "ours-3000=steps=3000",  # slower lr decay: the schedule of the earlier time-to-target runs
    "ours-3000+curriculum=steps=3000,curriculum_start=5,curriculum_steps=400",
]


class Contestant:
    """One training run that can advance by a number of steps and resumes from disk."""

    name: str
    eval_every: int
    state_dir: Path

    def __init__(self, name: str, state_dir: Path, eval_every: int, cap: int) -> None:
        self.name, self.state_dir, self.eval_every, self.cap = name, state_dir, eval_every, cap
        self.step, self.seconds, self.curve = 0, 0.0, []  # curve: (step, error, seconds)
        self.gen = torch.Generator().manual_seed(0)

    # -- to implement
    def modules(self) -> dict[str, Any]:
        raise NotImplementedError

    def one_step(self) -> None:
        raise NotImplementedError

    def error(self) -> float:
        raise NotImplementedError

    # -- shared
    @property
    def reached(self) -> float | None:
        return next((e for _, e, _ in self.curve if e <= TARGET), None)

    @property
    def done(self) -> bool:
        return self.reached is not None or self.step >= self.cap

    def advance(self, chunk: int) -> None:
        """Up to `chunk` steps (stopping at the next evaluation), the evaluation if due, then a
        checkpoint. Wall time counts training and evaluation, not the checkpoint."""
        start = time.perf_counter()
        todo = min(chunk, self.eval_every - self.step % self.eval_every)
        for _ in range(todo):
            self.one_step()
            self.step += 1
        if self.step % self.eval_every == 0:
            err = self.error()
            self.seconds += time.perf_counter() - start
            self.curve.append((self.step, err, round(self.seconds, 2)))
        else:
            self.seconds += time.perf_counter() - start
        self.save()

    def save(self) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        (self.state_dir / "identity.json").write_text(json.dumps(self.identity()) + "\n")
        state = {k: m.state_dict() for k, m in self.modules().items()}
        state.update(generator=self.gen.get_state(), step=self.step, seconds=self.seconds)
        save_checkpoint(self.state_dir / "state.pt", state)
        (self.state_dir / "curve.json").write_text(json.dumps(self.curve) + "\n")

    def identity(self) -> dict[str, Any]:
        """What this contestant trains; resuming state made with anything else is refused."""
        return {"name": self.name}

    def load(self) -> None:
        path = self.state_dir / "state.pt"
        ident = self.state_dir / "identity.json"
        if ident.exists() and json.loads(ident.read_text()) != self.identity():
            raise SystemExit(f"{self.state_dir} holds another configuration; use another --runs")
        if not path.exists():
            return
        if not ident.exists():  # state from before identities were recorded: adopt this one
            ident.write_text(json.dumps(self.identity()) + "\n")
        state = load_checkpoint(path, need=("generator", "step", "seconds"))
        for key, module in self.modules().items():
            module.load_state_dict(state[key])
        self.gen.set_state(state["generator"])
        self.step, self.seconds = int(state["step"]), float(state["seconds"])
        self.curve = [tuple(p) for p in json.loads((self.state_dir / "curve.json").read_text())]

    def result(self) -> dict[str, Any]:
        hit = next((p for p in self.curve if p[1] <= TARGET), None)
        last = hit or (self.curve[-1] if self.curve else (0, float("nan"), 0.0))
        return {
            "reached": hit is not None,
            "steps": last[0],
            "error": last[1],
            "seconds": last[2],
            "curve": [{"step": s, "error": e, "seconds": t} for s, e, t in self.curve],
        }


class Original(Contestant):
    """The original implementation's approach (HF GPT-2, looped PL loss, Adam 1e-4, batch 256)."""

    def __init__(self, state_dir: Path, eval_every: int, cap: int) -> None:
        super().__init__("original", state_dir, eval_every, cap)
        torch.manual_seed(0)
        self.model = OriginalStyle()
        self.opt = torch.optim.Adam(self.model.parameters(), lr=1e-4)
        self.load()

    def modules(self) -> dict[str, Any]:
        return {"model": self.model, "opt": self.opt}

    def one_step(self) -> None:
        batch = sample_task(256, generator=self.gen)
        loss = loop_pl_loss(self.model(batch.xs, batch.ys, batch.rs), batch.ys, batch.rs)
        self.opt.zero_grad()
        loss.backward()
        self.opt.step()

    def error(self) -> float:
        batch = sample_task(256, generator=torch.Generator().manual_seed(EVAL_SEED))
        with torch.no_grad():
            mean, _ = error_curve(self.model(batch.xs, batch.ys, batch.rs), batch.y_star)
        return float(mean[15])


class Ours(Contestant):
    """Our implementation and recipe: the `paper` preset with overrides."""

    def __init__(self, name: str, sets: list[str], state_dir: Path, eval_every: int, cap: int):
        super().__init__(name, state_dir, eval_every, cap)
        self.sets = sets
        self.cfg = replace(load_preset("paper", sets), eval_size=256)
        self.model, self.opt = build(self.cfg)
        self.gen = torch.Generator().manual_seed(self.cfg.seed)
        self.load()

    def modules(self) -> dict[str, Any]:
        return {"model": self.model, "opt": self.opt}

    def identity(self) -> dict[str, Any]:
        return {"name": self.name, "config": self.cfg.identity()}

    def one_step(self) -> None:
        batch = next_batch(self.cfg, self.gen, self.step)
        train_step(self.model, self.opt, batch, self.cfg, lr_at(self.cfg, self.step))

    def error(self) -> float:
        return eval_error(self.model, self.cfg)


TARGET = 0.32


def plot(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 3.8))
    for name, r in results["contestants"].items():
        pts = r["curve"]
        ax.plot(
            [p["seconds"] / 60 for p in pts],
            [p["error"] for p in pts],
            marker=".",
            ls=":" if name == "original" else "-",
            label=f"{name} ({r['label']})",
        )
    ax.axhline(results["target"], color="grey", ls="--", lw=1, label=f"target {results['target']}")
    ax.set_xlabel(f"training wall time, evaluations included (min; {results['threads']} thread(s))")
    ax.set_ylabel("error at t = 15")
    ax.set_title("Paper model (96 wide, 20 layers, 3 heads): time to target")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    global TARGET
    parser = argparse.ArgumentParser()
    parser.add_argument("--target", type=float, default=0.32)
    parser.add_argument("--eval-every", type=int, default=50)
    parser.add_argument("--cap", type=int, default=3000, help="Give up after this many steps.")
    parser.add_argument("--chunk", type=int, default=5, help="Steps per turn (round robin).")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--runs", default="runs/bench/time_to_target_interleaved")
    parser.add_argument("--out", default="bench/results/time_to_target.json")
    parser.add_argument(
        "--recipe",
        action="append",
        default=None,
        help="NAME=KEY=V,KEY=V: one of our recipes (the paper preset with these overrides). "
        f"Default: {' '.join(DEFAULT_RECIPES)}",
    )
    parser.add_argument("--report-only", action="store_true")
    args = parser.parse_args()
    if min(args.eval_every, args.cap, args.chunk) < 1 or not 0 < args.target < 2:
        parser.error("--eval-every, --cap and --chunk must be >= 1, --target in (0, 2)")
    TARGET = args.target
    if args.threads:
        torch.set_num_threads(args.threads)
    runs = Path(args.runs)
    contestants: list[Contestant] = [Original(runs / "original", args.eval_every, args.cap)]
    labels = {"original": "HF GPT-2 + its init, looped PL loss, Adam 1e-4, batch 256"}
    for spec in args.recipe or DEFAULT_RECIPES:
        name, _, sets_text = spec.partition("=")
        sets = [s for s in sets_text.split(",") if s]
        contestants.append(Ours(name, sets, runs / name, args.eval_every, args.cap))
        labels[name] = "paper preset" + (f" + {', '.join(sets)}" if sets else "")
    load_log = runs / "load.jsonl"
    while not args.report_only and not all(c.done for c in contestants):
        for c in contestants:
            if not c.done:
                c.advance(args.chunk)
                if c.step % c.eval_every:
                    continue
                print(
                    f"{c.name:18s} step {c.step:5d} error {c.curve[-1][1]:.4f} {c.seconds:8.1f} s",
                    flush=True,
                )
        with open(load_log, "a") as fh:
            fh.write(json.dumps({"time": time.time(), "loadavg": os.getloadavg()}) + "\n")
    results: dict[str, Any] = {
        "target": TARGET,
        "threads": torch.get_num_threads(),
        "eval_every": args.eval_every,
        "cpu_count": os.cpu_count(),
        "contestants": {c.name: {"label": labels[c.name], **c.result()} for c in contestants},
    }
    if load_log.exists():
        loads = [json.loads(line)["loadavg"][0] for line in load_log.read_text().splitlines()]
        results["load_average_1min"] = {
            "min": min(loads),
            "mean": round(sum(loads) / len(loads), 2),
            "max": max(loads),
        }
    original = results["contestants"]["original"]
    for name, r in results["contestants"].items():
        if name == "original":
            continue
        if r["reached"] and original["reached"]:
            r["speedup_vs_original"] = round(original["seconds"] / r["seconds"], 2)
        elif r["reached"]:  # the original stopped short: its time so far bounds the ratio
            r["speedup_vs_original"] = f">= {original['seconds'] / r['seconds']:.2f}"
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    plot(results, out.with_suffix(".png"))
    for name, r in results["contestants"].items():
        print(
            name,
            {k: r.get(k) for k in ("reached", "steps", "error", "seconds", "speedup_vs_original")},
        )


if __name__ == "__main__":
    main()
