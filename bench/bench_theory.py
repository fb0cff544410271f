"""Theory-lab benchmarks behind BENCHMARKS.md (not run by CI).

    .venv/bin/python bench/bench_theory.py [--steps 5] [--gd-seqs 256]

1. Training step time, paper model (96 wide, 20 layers, 3 heads, batch 256): the original
   implementation's approach (Hugging Face GPT-2 backbone + PL loss looped in Python over batch
   and prefixes) against ours (own module, fused attention, vectorised loss); same run.
2. GD baseline evaluation (50 Adam steps at lr 0.1, every prefix of every sequence): the
   original per-sequence, per-prefix loop against our batched version; same run.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from torch import nn

from selfcorrect.theory.baselines import GDPredictor
from selfcorrect.theory.losses import cosine_score, pl_loss_prefixes
from selfcorrect.theory.model import AlignmentTransformer, ModelConfig
from selfcorrect.theory.task import sample_task, tokens


class OriginalStyle(nn.Module):
    """GPT-2 backbone from transformers with linear read-in/out (the original code's shape)."""

    def __init__(
        self,
        n_dims: int = 5,
        n_points: int = 20,
        n_embd: int = 96,
        n_layer: int = 20,
        n_head: int = 3,
    ):
        super().__init__()
        from transformers import GPT2Config, GPT2Model

        config = GPT2Config(
            n_positions=3 * n_points,
            n_embd=n_embd,
            n_layer=n_layer,
            n_head=n_head,
            resid_pdrop=0.0,
            embd_pdrop=0.0,
            attn_pdrop=0.0,
            use_cache=False,
        )
        self.read_in = nn.Linear(n_dims, n_embd)
        self.backbone = GPT2Model(config)
        self.read_out = nn.Linear(n_embd, n_dims)

    def forward(self, xs, ys, rs):
        h = self.backbone(inputs_embeds=self.read_in(tokens(xs, ys, rs))).last_hidden_state
        return self.read_out(h)[:, ::3]


def loop_pl_loss(pred, ys, rs):
    """PL loss looped in Python over sequences and prefixes, as the original code does."""
    b, n, _ = ys.shape
    total = pred.new_zeros(())
    for i in range(b):
        for m in range(2, n):
            order = torch.argsort(rs[i, :m], descending=True, stable=True)
            s = cosine_score(pred[i, m][None, None], ys[i, order][None])[0, 0]  # (m,)
            tail = torch.logcumsumexp(s.flip(0), 0).flip(0)
            total = total + (tail - s).sum()
    return total / (b * (n - 2))


def step_time(model, loss_fn, steps: int) -> float:
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    g = torch.Generator().manual_seed(0)
    times = []
    for _ in range(steps + 1):
        batch = sample_task(256, generator=g)
        start = time.perf_counter()
        loss = loss_fn(model(batch.xs, batch.ys, batch.rs), batch.ys, batch.rs)
        opt.zero_grad()
        loss.backward()
        opt.step()
        times.append(time.perf_counter() - start)
    return sum(times[1:]) / steps  # first step warms up


def gd_loop(xs, ys, rs):
    """Original-style GD baseline: a fresh linear map per sequence and prefix, 50 Adam steps."""
    b, n, d = ys.shape
    out = torch.zeros(b, n, d)
    for i in range(b):
        for m in range(2, n):
            torch.manual_seed(i * n + m)
            lin = nn.Linear(d, d, bias=False)
            opt = torch.optim.Adam(lin.parameters(), lr=0.1)
            order = torch.argsort(rs[i, :m], descending=True, stable=True)
            for _ in range(50):
                s = cosine_score(lin(xs[i, 0])[None, None], ys[i, order][None])[0, 0]
                loss = (torch.logcumsumexp(s.flip(0), 0).flip(0) - s).sum()
                opt.zero_grad()
                loss.backward()
                opt.step()
            with torch.no_grad():
                out[i, m] = lin(xs[i, 0])
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--gd-seqs", type=int, default=256)
    parser.add_argument("--out", default="bench/results/theory.json")
    args = parser.parse_args()
    torch.manual_seed(0)
    results: dict[str, object] = {"threads": torch.get_num_threads()}
    original = step_time(OriginalStyle(), loop_pl_loss, args.steps)
    ours = step_time(AlignmentTransformer(ModelConfig()), pl_loss_prefixes, args.steps)
    results["train_step_s"] = {
        "original_style": round(original, 3),
        "ours": round(ours, 3),
        "speedup": round(original / ours, 2),
    }
    batch = sample_task(args.gd_seqs, generator=torch.Generator().manual_seed(1))
    start = time.perf_counter()
    gd_loop(batch.xs, batch.ys, batch.rs)
    loop_s = time.perf_counter() - start
    start = time.perf_counter()
    GDPredictor("adam", steps=50, lr=0.1)(batch.xs, batch.ys, batch.rs)
    batched_s = time.perf_counter() - start
    results["gd_eval_s"] = {
        "sequences": args.gd_seqs,
        "original_loop": round(loop_s, 2),
        "batched": round(batched_s, 3),
        "speedup": round(loop_s / batched_s, 1),
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
