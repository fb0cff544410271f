"""PL / BT losses: the vectorised prefix loss equals a plain per-sample loop."""

from __future__ import annotations

import math

import pytest
import torch

from selfcorrect.theory.losses import SCORES, bt_loss, pl_loss_prefixes


def loop_pl(pred, ys, rs, score):
    """Straightforward reference: Python loops over batch, prefix and rank."""
    b, n, _ = ys.shape
    total, count = 0.0, 0
    for bi in range(b):
        for m in range(2, n):
            rewards = rs[bi, :m].tolist()
            order = sorted(range(m), key=lambda j: -rewards[j])  # stable: ties keep sequence order
            s = [
                float(SCORES[score](pred[bi, m][None, None], ys[bi, j][None, None]))
                for j in range(m)
            ]
            loss = 0.0
            for k in range(m):
                rest = [s[order[j]] for j in range(k, m)]
                top = max(rest)
                loss -= s[order[k]] - (top + math.log(sum(math.exp(v - top) for v in rest)))
            total += loss
            count += 1
    return total / count


@pytest.mark.parametrize("score", ["cosine", "inner", "neg_sq_dist"])
def test_vectorised_equals_loop(score):
    g = torch.Generator().manual_seed(0)
    pred, ys = torch.randn(3, 9, 4, generator=g), torch.randn(3, 9, 4, generator=g)
    rs = torch.rand(3, 9, generator=g)
    rs[0, 3] = rs[0, 1]  # a tie
    rs[1, :] = 0.5  # all tied
    fast = pl_loss_prefixes(pred, ys, rs, score).item()
    assert abs(fast - loop_pl(pred, ys, rs, score)) < 1e-5 * max(1.0, abs(fast))
    assert pl_loss_prefixes(pred, ys, rs[..., None], score).item() == pytest.approx(fast)


def test_gradients_are_finite_and_bt_is_pl_with_two():
    g = torch.Generator().manual_seed(1)
    pred = torch.randn(2, 6, 3, generator=g, requires_grad=True)
    ys, rs = torch.randn(2, 6, 3, generator=g), torch.rand(2, 6, generator=g)
    pl_loss_prefixes(pred, ys, rs).backward()
    assert torch.isfinite(pred.grad).all()
    sw, sl = torch.tensor(0.7), torch.tensor(0.2)
    pl_two = -(sw - torch.logsumexp(torch.stack([sw, sl]), 0))
    assert bt_loss(sw, sl).item() == pytest.approx(pl_two.item())
