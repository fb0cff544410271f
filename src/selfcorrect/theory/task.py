"""The synthetic in-context alignment task (Wang et al. 2024, section 3; PAPER.md section 3).

Per sequence: one query ``x ~ N(0, I_d)``; a target map ``W*`` and a nuisance map ``W_eps``
(d x d, standard normal); rewards ``r_i ~ U(0, 1)``; responses
``y_i = r_i * x W* + (1 - r_i) * x W_eps``. The ideal response is ``y* = x W*``.

Reward noise p: each *observed* reward is replaced, with probability p, by a fresh U(0, 1) draw
(the responses keep their clean rewards). Every draw comes from the given `torch.Generator`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class TaskBatch:
    xs: torch.Tensor  # (b, n, d): the query, repeated for every example
    ys: torch.Tensor  # (b, n, d): responses
    rs: torch.Tensor  # (b, n): observed (possibly noisy) rewards
    y_star: torch.Tensor  # (b, d): the ideal response x W*

    def to(self, device: str | torch.device) -> TaskBatch:
        return TaskBatch(
            self.xs.to(device), self.ys.to(device), self.rs.to(device), self.y_star.to(device)
        )


def sample_task(
    batch: int,
    *,
    n_dims: int = 5,
    n_points: int = 20,
    noise: float = 0.0,
    generator: torch.Generator,
    dtype: torch.dtype = torch.float32,
) -> TaskBatch:
    if not 0.0 <= noise <= 1.0:
        raise ValueError(f"reward noise must be in [0, 1], got {noise}")
    g = generator
    x = torch.randn(batch, n_dims, generator=g, dtype=dtype)  # (b, d)
    w_star = torch.randn(batch, n_dims, n_dims, generator=g, dtype=dtype)  # (b, d, d)
    w_eps = torch.randn(batch, n_dims, n_dims, generator=g, dtype=dtype)  # (b, d, d)
    rs = torch.rand(batch, n_points, generator=g, dtype=dtype)  # (b, n)
    y_star = torch.einsum("bd,bde->be", x, w_star)  # (b, d)
    y_eps = torch.einsum("bd,bde->be", x, w_eps)  # (b, d)
    ys = rs[..., None] * y_star[:, None, :] + (1 - rs[..., None]) * y_eps[:, None, :]  # (b, n, d)
    # Noise is drawn even when p = 0, so the clean draws above do not depend on p.
    replace = torch.rand(batch, n_points, generator=g, dtype=dtype) < noise  # (b, n)
    fresh = torch.rand(batch, n_points, generator=g, dtype=dtype)  # (b, n)
    observed = torch.where(replace, fresh, rs)
    xs = x[:, None, :].expand(batch, n_points, n_dims)  # (b, n, d)
    return TaskBatch(xs=xs, ys=ys, rs=observed, y_star=y_star)


def tokens(xs: torch.Tensor, ys: torch.Tensor, rs: torch.Tensor) -> torch.Tensor:
    """Interleave three tokens per example, ``x_i, y_i, [r_i, 0, ..., 0]``: (b, 3n, d)."""
    b, n, d = xs.shape
    r_tok = torch.zeros(b, n, d, dtype=xs.dtype, device=xs.device)
    r_tok[..., 0] = rs
    return torch.stack([xs, ys, r_tok], dim=2).reshape(b, 3 * n, d)  # (b, 3n, d)
