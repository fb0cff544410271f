"""PL / BT losses: the vectorised prefix loss equals a plain per-sample loop.

The reference computes its scores itself, in plain Python (not with the module's score
functions), so a bug in a score function cannot hide in the reference too."""

from __future__ import annotations

import math

import pytest
import torch

from selfcorrect.theory.losses import bt_loss, cosine_score, pl_loss_prefixes


def _dot(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))


REFERENCE_SCORES = {
    "cosine": lambda a, b: _dot(a, b) / math.sqrt(_dot(a, a) * _dot(b, b)),
    "inner": _dot,
    "neg_sq_dist": lambda a, b: -sum((x - y) ** 2 for x, y in zip(a, b, strict=True)),
}


def loop_pl(pred, ys, rs, score):
    """Straightforward reference: Python loops over batch, prefix and rank."""
    b, n, _ = ys.shape
    total, count = 0.0, 0
    for bi in range(b):
        for m in range(2, n):
            rewards = rs[bi, :m].tolist()
            order = sorted(range(m), key=lambda j: -rewards[j])  # stable: ties keep sequence order
            p = pred[bi, m].tolist()
            s = [REFERENCE_SCORES[score](p, ys[bi, j].tolist()) for j in range(m)]
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


def test_cosine_score_is_the_cosine():
    g = torch.Generator().manual_seed(2)
    pred, ys = torch.randn(2, 4, 3, generator=g), 5 * torch.randn(2, 6, 3, generator=g)
    s = cosine_score(pred, ys)
    assert s.shape == (2, 4, 6)
    for b in range(2):
        for m in range(4):
            for j in range(6):
                want = REFERENCE_SCORES["cosine"](pred[b, m].tolist(), ys[b, j].tolist())
                assert s[b, m, j].item() == pytest.approx(want, abs=1e-6)
