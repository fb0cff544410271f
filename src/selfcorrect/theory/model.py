"""One readable GPT-2-style transformer for the in-context alignment task (nanoGPT style).

Tokens ``x_i, y_i, [r_i, 0..0]`` (3 per example) go through a linear read-in (d -> n_embd), learned
positions, ``n_layer`` pre-LN blocks and a linear read-out (n_embd -> d); predictions are read at
the x tokens, so ``pred[:, m]`` has seen examples 0..m-1 completely.

Switches: depth, heads, width, softmax vs linear attention (scores not normalised), FFN on/off.
Every variant is causal: the original code left the no-FFN and linear-attention variants unmasked,
letting them see later tokens (and rewards); here the mask is part of every attention path.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from selfcorrect.theory.task import tokens


@dataclass(frozen=True)
class ModelConfig:
    n_dims: int = 5
    n_points: int = 20
    n_embd: int = 96
    n_layer: int = 20
    n_head: int = 3
    attention: str = "softmax"  # or "linear"
    ffn: bool = True

    def __post_init__(self) -> None:
        if self.n_embd % self.n_head:
            raise ValueError(f"n_embd {self.n_embd} is not divisible by n_head {self.n_head}")
        if self.attention not in ("softmax", "linear"):
            raise ValueError(f"attention must be softmax or linear, got {self.attention!r}")


class Attention(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.n_head = cfg.n_head
        self.linear = cfg.attention == "linear"
        self.qkv = nn.Linear(cfg.n_embd, 3 * cfg.n_embd)
        self.proj = nn.Linear(cfg.n_embd, cfg.n_embd)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        b, t, c = h.shape
        q, k, v = self.qkv(h).split(c, dim=2)  # each (b, t, c)
        q, k, v = (
            z.view(b, t, self.n_head, c // self.n_head).transpose(1, 2) for z in (q, k, v)
        )  # (b, nh, t, hs)
        if self.linear:
            scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])  # (b, nh, t, t)
            causal = torch.ones(t, t, dtype=torch.bool, device=h.device).tril()
            y = scores.masked_fill(~causal, 0.0) @ v  # (b, nh, t, hs), no normalisation
        else:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)  # (b, nh, t, hs)
        return self.proj(y.transpose(1, 2).reshape(b, t, c))  # (b, t, c)


class Block(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.ln1 = nn.LayerNorm(cfg.n_embd)
        self.attn = Attention(cfg)
        self.ffn = (
            nn.Sequential(
                nn.LayerNorm(cfg.n_embd),
                nn.Linear(cfg.n_embd, 4 * cfg.n_embd),
                nn.GELU(),
                nn.Linear(4 * cfg.n_embd, cfg.n_embd),
            )
            if cfg.ffn
            else None
        )

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        h = h + self.attn(self.ln1(h))
        if self.ffn is not None:
            h = h + self.ffn(h)
        return h


class AlignmentTransformer(nn.Module):
    """Predictor with the shared call shape ``(xs, ys, rs) -> pred``, pred: (b, n, d)."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.read_in = nn.Linear(cfg.n_dims, cfg.n_embd)
        self.pos = nn.Parameter(torch.zeros(1, 3 * cfg.n_points, cfg.n_embd))
        nn.init.normal_(self.pos, std=0.02)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layer))
        self.ln_f = nn.LayerNorm(cfg.n_embd)
        self.read_out = nn.Linear(cfg.n_embd, cfg.n_dims)

    def forward(self, xs: torch.Tensor, ys: torch.Tensor, rs: torch.Tensor) -> torch.Tensor:
        seq = tokens(xs, ys, rs)  # (b, 3n, d)
        h = self.read_in(seq) + self.pos[:, : seq.shape[1]]  # (b, 3n, c)
        for block in self.blocks:
            h = block(h)
        out = self.read_out(self.ln_f(h))  # (b, 3n, d)
        return out[:, ::3]  # (b, n, d): predictions at the x tokens
