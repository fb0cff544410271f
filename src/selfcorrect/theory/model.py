"""One readable GPT-2-style transformer for the in-context alignment task (nanoGPT style).

Tokens ``x_i, y_i, [r_i, 0..0]`` (3 per example) go through a linear read-in (d -> n_embd), learned
positions, ``n_layer`` pre-LN blocks and a linear read-out (n_embd -> d); predictions are read at
the x tokens, so ``pred[:, m]`` has seen examples 0..m-1 completely.

Switches: depth, heads, width, softmax vs linear attention (scores not normalised), FFN on/off.
Every variant is causal: the original code left the no-FFN and linear-attention variants unmasked,
letting them see later tokens (and rewards); here the mask is part of every attention path.

Fidelity options (PAPER.md section 3): ``init="gpt2"`` is Hugging Face GPT-2's initialisation of
the backbone (weights N(0, 0.02), residual projections N(0, 0.02/sqrt(2L)), zero biases; read-in
and read-out keep PyTorch's default, as in the original code); ``gelu="tanh"`` is GPT-2's
tanh-approximated GELU; ``keep_ln2=True`` makes a block without FFN still apply its second layer
norm to the residual stream (``h = ln_2(h + attn(ln_1(h)))``), as the official no-FFN block does.
Defaults: PyTorch's init, exact GELU, and a no-FFN block that is just the attention sub-layer.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import cast

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
    keep_ln2: bool = False  # without FFN: still h = ln_2(h) after attention (official block)
    init: str = "torch"  # or "gpt2" (Hugging Face GPT-2's initialisation)
    gelu: str = "exact"  # or "tanh" (GPT-2's approximation)

    def __post_init__(self) -> None:
        for name in ("n_dims", "n_embd", "n_layer", "n_head"):
            if getattr(self, name) < 1:
                raise ValueError(f"model.{name} must be >= 1, got {getattr(self, name)}")
        if self.n_points < 3:
            raise ValueError(
                f"model.n_points must be >= 3 (PL prefixes 2..n-1), got {self.n_points}"
            )
        if self.n_embd % self.n_head:
            raise ValueError(f"n_embd {self.n_embd} is not divisible by n_head {self.n_head}")
        if self.attention not in ("softmax", "linear"):
            raise ValueError(f"attention must be softmax or linear, got {self.attention!r}")
        if self.init not in ("torch", "gpt2"):
            raise ValueError(f"model.init must be torch or gpt2, got {self.init!r}")
        if self.gelu not in ("exact", "tanh"):
            raise ValueError(f"model.gelu must be exact or tanh, got {self.gelu!r}")
        if self.keep_ln2 and self.ffn:
            raise ValueError("model.keep_ln2 applies only without the FFN (model.ffn=false)")


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
                nn.GELU(approximate="tanh" if cfg.gelu == "tanh" else "none"),
                nn.Linear(4 * cfg.n_embd, cfg.n_embd),
            )
            if cfg.ffn
            else None
        )
        self.ln2 = nn.LayerNorm(cfg.n_embd) if cfg.keep_ln2 else None

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        h = h + self.attn(self.ln1(h))
        if self.ffn is not None:
            h = h + self.ffn(h)
        if self.ln2 is not None:
            h = self.ln2(h)
        return h

    def residual_projections(self) -> list[nn.Linear]:
        """The layers that write into the residual stream (GPT-2 scales their init by depth)."""
        out = [self.attn.proj]
        if self.ffn is not None:
            out.append(cast(nn.Linear, self.ffn[3]))
        return out


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
        if cfg.init == "gpt2":
            self._init_gpt2()

    def _init_gpt2(self) -> None:
        """Hugging Face GPT-2's init of the backbone: Linear weights N(0, 0.02), zero biases,
        residual projections N(0, 0.02/sqrt(2L)), positions N(0, 0.02); LayerNorms 1/0."""
        for block in self.blocks:
            for module in block.modules():
                if isinstance(module, nn.Linear):
                    nn.init.normal_(module.weight, std=0.02)
                    nn.init.zeros_(module.bias)
            for proj in cast(Block, block).residual_projections():
                nn.init.normal_(proj.weight, std=0.02 / math.sqrt(2 * self.cfg.n_layer))
        nn.init.normal_(self.pos, std=0.02)

    def forward(self, xs: torch.Tensor, ys: torch.Tensor, rs: torch.Tensor) -> torch.Tensor:
        seq = tokens(xs, ys, rs)  # (b, 3n, d)
        h = self.read_in(seq) + self.pos[:, : seq.shape[1]]  # (b, 3n, c)
        for block in self.blocks:
            h = block(h)
        out = self.read_out(self.ln_f(h))  # (b, 3n, d)
        return out[:, ::3]  # (b, n, d): predictions at the x tokens
