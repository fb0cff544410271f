"""Baselines with the transformer's call shape ``(xs, ys, rs) -> pred`` (b, n, d), where
``pred[:, m]`` uses only the first m examples.

- `GDPredictor`: a linear map ``y_hat = x W`` (d x d, no bias) fitted to the PL loss of each
  prefix separately, batched over sequences *and* prefixes (one W per (sequence, prefix)):
  ``method="adam"`` is the original code's 50 Adam steps at lr 0.1; ``"gd"`` is plain gradient
  descent; ``"pgd"`` preconditions by ``(x x^T)^+`` (for y_hat = x W this divides the step by
  ||x||^2). W starts from the same seeded init as ``nn.Linear`` (uniform +-1/sqrt(d)).
- `tune_step_size`: the step size of plain or preconditioned GD, chosen on sequences of its
  own (never the evaluation set) from a log grid: PAPER.md's faithful baselines are these two
  with a tuned step size, beside the original's Adam.
- Reference predictors that show what the task allows: the highest-reward in-context response,
  and least-squares extrapolation of y on r to r = 1 (exact on clean rewards once m >= 2).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from selfcorrect.theory.evaluate import sequence_errors
from selfcorrect.theory.losses import pl_loss_per_prefix
from selfcorrect.theory.task import sample_task

TUNE_SEED = 10_009  # step sizes are tuned on sequences of their own, never the evaluation set
STEP_SIZES = tuple(10 ** (k / 2) for k in range(-6, 3))  # 1e-3 .. 10, half a decade apart


@dataclass
class GDPredictor:
    method: str = "adam"
    steps: int = 50
    lr: float = 0.1
    score: str = "cosine"
    seed: int = 0

    def __post_init__(self) -> None:
        if self.method not in ("adam", "gd", "pgd"):
            raise ValueError(f"method must be adam, gd or pgd, got {self.method!r}")

    @property
    def name(self) -> str:
        return f"GD-{self.method}"

    @property
    def label(self) -> str:
        """How curves and figures name it, e.g. "plain GD (50 steps, lr 0.316)"."""
        if self.method == "adam":
            return f"GD ({self.steps} Adam steps, lr {self.lr:g})"
        kind = "plain" if self.method == "gd" else "preconditioned"
        return f"{kind} GD ({self.steps} steps, lr {self.lr:.3g})"

    def __call__(self, xs: torch.Tensor, ys: torch.Tensor, rs: torch.Tensor) -> torch.Tensor:
        b, n, d = ys.shape
        g = torch.Generator().manual_seed(self.seed)
        bound = 1 / d**0.5
        w = ((torch.rand(b, n, d, d, generator=g, dtype=ys.dtype) * 2 - 1) * bound).to(ys.device)
        w.requires_grad_(True)  # (b, m, d, d): one map per sequence and prefix
        x = xs[:, 0, :]  # (b, d)
        opt = torch.optim.Adam([w], lr=self.lr) if self.method == "adam" else None
        with torch.enable_grad():
            for _ in range(self.steps):
                pred = torch.einsum("bd,bmde->bme", x, w)  # (b, m, d)
                loss = pl_loss_per_prefix(
                    pred, ys, rs, self.score
                ).sum()  # prefixes are independent
                (grad,) = torch.autograd.grad(loss, w)
                if opt is not None:
                    w.grad = grad
                    opt.step()
                    continue
                if self.method == "pgd":
                    grad = grad / (x.pow(2).sum(-1)[:, None, None, None] + 1e-8)
                with torch.no_grad():
                    w -= self.lr * grad
        with torch.no_grad():
            return torch.einsum("bd,bmde->bme", x, w)  # (b, n, d)


def best_in_context(xs: torch.Tensor, ys: torch.Tensor, rs: torch.Tensor) -> torch.Tensor:
    """``pred[:, m]`` = the highest-reward response among the first m (zeros for m = 0)."""
    b, n, d = ys.shape
    idx = torch.arange(n, device=ys.device)
    masked = (
        rs[:, None, :]
        .expand(b, n, n)
        .masked_fill(idx[None, None, :] >= idx[None, :, None], float("-inf"))
    )
    best = masked.argmax(-1)  # (b, m)
    pred = torch.gather(ys, 1, best[..., None].expand(b, n, d))  # (b, m, d)
    pred[:, 0] = 0
    return pred


def ls_extrapolation(xs: torch.Tensor, ys: torch.Tensor, rs: torch.Tensor) -> torch.Tensor:
    """Fit ``y = a + b r`` on the first m examples, predict at r = 1 (zeros for m < 2)."""
    b, n, d = ys.shape
    idx = torch.arange(n, device=ys.device)
    w = (idx[None, :] < idx[:, None]).to(ys.dtype)  # (m, j): j < m
    count = w.sum(-1).clamp(min=1)  # (m,)
    r_mean = (rs @ w.T) / count  # (b, m)
    y_mean = torch.einsum("mj,bjd->bmd", w, ys) / count[None, :, None]  # (b, m, d)
    dr = rs[:, None, :] - r_mean[..., None]  # (b, m, j)
    var = (w[None] * dr**2).sum(-1)  # (b, m)
    cov = torch.einsum("mj,bmj,bjd->bmd", w, dr, ys)  # (b, m, d)
    slope = cov / var.clamp(min=1e-12)[..., None]  # (b, m, d)
    pred = y_mean + slope * (1 - r_mean)[..., None]  # (b, m, d)
    pred[:, :2] = 0
    return pred


def tune_step_size(
    method: str,
    *,
    steps: int = 50,
    n_tune: int = 256,
    n_dims: int = 5,
    n_points: int = 20,
    grid: tuple[float, ...] = STEP_SIZES,
    device: str = "cpu",
) -> tuple[float, dict[float, float]]:
    """The step size in `grid` with which `method` ("gd" or "pgd", `steps` steps) has the
    lowest mean error over t = 1..n-1 on `n_tune` sequences drawn from `TUNE_SEED`, and each
    candidate's error (inf where it diverged)."""
    if method not in ("gd", "pgd"):
        raise ValueError(f"only gd and pgd take a tuned step size, not {method!r}")
    batch = sample_task(
        n_tune,
        n_dims=n_dims,
        n_points=n_points,
        generator=torch.Generator().manual_seed(TUNE_SEED),
    ).to(device)
    errors = {}
    for lr in grid:
        pred = GDPredictor(method, steps=steps, lr=lr)(batch.xs, batch.ys, batch.rs)
        error = float(sequence_errors(pred.float().cpu(), batch.y_star.cpu())[:, 1:].mean())
        errors[lr] = error if math.isfinite(error) else math.inf
    return min(errors, key=lambda lr: errors[lr]), errors
