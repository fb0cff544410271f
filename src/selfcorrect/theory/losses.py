"""Alignment losses over in-context prefixes: Plackett-Luce and Bradley-Terry.

``pl_loss_prefixes(pred, ys, rs)``: for every prefix length m = 2..n-1 the PL loss of the
prediction made after m examples (``pred[:, m]``) over the first m responses ranked by reward;
mean over prefixes, then over the batch (PAPER.md section 3).

Tie rule: responses with equal rewards keep their order in the sequence (a stable sort by
decreasing reward), so the earlier one is ranked first.

Vectorised form: with scores ``S[b, m, j] = s(pred[b, m], ys[b, j])``, the PL loss of prefix m is
``sum_{i<m} -(S[b,m,i] - logsumexp_{j<m, j ranked at or after i} S[b,m,j])``; "ranked at or after"
does not depend on m, so one (b, n, n) mask and one masked log-sum-exp over (b, m, i, j) do it.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

ScoreFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def cosine_score(pred: torch.Tensor, ys: torch.Tensor) -> torch.Tensor:
    """``S[b, m, j] = cos(pred[b, m], ys[b, j])`` (the original code's score)."""
    return F.normalize(pred, dim=-1, eps=1e-8) @ F.normalize(ys, dim=-1, eps=1e-8).transpose(1, 2)


def inner_score(pred: torch.Tensor, ys: torch.Tensor) -> torch.Tensor:
    return pred @ ys.transpose(1, 2)


def neg_sq_dist_score(pred: torch.Tensor, ys: torch.Tensor) -> torch.Tensor:
    return -torch.cdist(pred, ys).pow(2)


SCORES: dict[str, ScoreFn] = {
    "cosine": cosine_score,
    "inner": inner_score,
    "neg_sq_dist": neg_sq_dist_score,
}


def ranked_at_or_after(rs: torch.Tensor) -> torch.Tensor:
    """``M[b, i, j]``: response j is ranked at or after response i (stable tie rule): (b, n, n)."""
    n = rs.shape[-1]
    idx = torch.arange(n, device=rs.device)
    ri, rj = rs[..., :, None], rs[..., None, :]
    return (rj < ri) | ((rj == ri) & (idx[None, :] >= idx[:, None]))


def pl_loss_prefixes(
    pred: torch.Tensor, ys: torch.Tensor, rs: torch.Tensor, score: str | ScoreFn = "cosine"
) -> torch.Tensor:
    """Mean PL loss over prefixes 2..n-1, then over the batch. pred, ys: (b, n, d); rs: (b, n[, 1])."""
    n = ys.shape[1]
    if n < 3:
        raise ValueError(f"need at least 3 examples for prefixes 2..n-1, got {n}")
    return pl_loss_per_prefix(pred, ys, rs, score)[:, 2:n].mean()


def pl_loss_per_prefix(
    pred: torch.Tensor, ys: torch.Tensor, rs: torch.Tensor, score: str | ScoreFn = "cosine"
) -> torch.Tensor:
    """``L[b, m]``: PL loss of ``pred[b, m]`` over the first m responses (0 for m < 2): (b, n)."""
    if rs.dim() == 3:
        rs = rs[..., 0]
    n = ys.shape[1]
    fn = SCORES[score] if isinstance(score, str) else score
    s = fn(pred, ys)  # (b, m, j)
    order = ranked_at_or_after(rs)  # (b, i, j)
    idx = torch.arange(n, device=ys.device)
    in_prefix = idx[None, :] < idx[:, None]  # (m, j): j < m
    both = in_prefix[:, None, :] & in_prefix[:, :, None]  # (m, i, j): i < m and j < m
    # i outside the prefix keeps j = i so no row is all -inf (its gradient would be NaN)
    diagonal = torch.eye(n, dtype=torch.bool, device=ys.device)[None]  # (1, i, j)
    mask = order[:, None, :, :] & (both | diagonal)[None]  # (b, m, i, j)
    masked = s[:, :, None, :].masked_fill(~mask, float("-inf"))  # (b, m, i, j)
    lse = torch.logsumexp(masked, dim=-1)  # (b, m, i)
    terms = torch.where(in_prefix[None], lse - s, torch.zeros_like(s))  # (b, m, i)
    return terms.sum(-1)  # (b, m)


def bt_loss(s_winner: torch.Tensor, s_loser: torch.Tensor) -> torch.Tensor:
    """Bradley-Terry: ``-log sigmoid(s_w - s_l)``, the N = 2 case of PL."""
    return F.softplus(s_loser - s_winner)
