"""A hand-weighted softmax transformer whose forward pass is gradient descent on the PL loss.

Linear reward ``s(y) = <W x, y>``, prediction ``y_hat = W x``. One GD step with rate eta:

    y_hat+ = y_hat + eta ||x||^2 sum_{k=1..N-1} (y_tau(k) - ybar_k),
    ybar_k = sum_{j>=k} softmax_j(<y_hat, y_tau(j)>) y_tau(j)          (PAPER.md section 4)

Token layout (width 3d + 5), N response tokens then one query token:

    response i: [x, y_i,   r_i, m=0, rmax=0, acc=0 (d), 1, q=0]
    query:      [x, y_hat, 0,   0,   0,      0 (d),     1, q=1]

Block k (k = 1..N-1) is an ordinary residual block, bidirectional, with hand-set weights:
1. selection head: logit ``beta (r_j - C m_j - C q_j)``, value ``y_j`` -> acc and ``r_j`` -> rmax:
   a hard argmax over the not-yet-selected responses, i.e. y_tau(k) and its reward;
2. averaging head: logit ``<y_hat, y_j> - C m_j - C q_j``, value ``-y_j`` -> acc: minus ybar_k;
3. ReLU FFN: with ``delta = rmax - r_i``, ``s_i = ReLU(1 - gamma delta - G(m_i+q_i)) -
   ReLU(-gamma delta - G(m_i+q_i))`` is 1 on the token just selected (and on earlier-selected
   ones, where it only raises an already-set mask), 0 elsewhere; ``m += s``; ``rmax -= ReLU(rmax)``.

After N-1 blocks the read-out gives ``y_hat + eta ||x||^2 acc`` at the query token; T steps are T
such stacks, each followed by a token-wise write-back (query's y slot += the update; acc, m and
rmax cleared). The ||x||^2 gain is the one non-linear factor of the read-out: it is the learning
rate's scaling for a linear reward model, computed from the query's x slot.
"""

from __future__ import annotations

from typing import cast

import torch
from torch import nn

# ---- explicit gradient descent (the reference the network must match) -----------------------


def ranking(rs: torch.Tensor) -> torch.Tensor:
    """Indices by decreasing reward, ties in sequence order (stable): (b, n)."""
    return torch.sort(rs, dim=-1, descending=True, stable=True).indices


def pl_loss_linear(
    w: torch.Tensor, x: torch.Tensor, ys: torch.Tensor, rs: torch.Tensor
) -> torch.Tensor:
    """PL loss with linear reward ``<W x, y>``; w: (b, d, d) acting as y_hat = W x. Summed over b."""
    y_hat = torch.einsum("bij,bj->bi", w, x)  # (b, d)
    s = torch.einsum("bd,bnd->bn", y_hat, ys)  # (b, n)
    s_sorted = torch.gather(s, 1, ranking(rs))  # (b, n) in rank order
    tail_lse = torch.logcumsumexp(s_sorted.flip(-1), dim=-1).flip(-1)  # (b, n): lse over j >= k
    return (tail_lse - s_sorted).sum()


def pl_gradient_w(
    w: torch.Tensor, x: torch.Tensor, ys: torch.Tensor, rs: torch.Tensor
) -> torch.Tensor:
    """Closed-form ``dL/dW = -sum_k (y_tau(k) - ybar_k) x^T``: (b, d, d)."""
    y_hat = torch.einsum("bij,bj->bi", w, x)  # (b, d)
    direction = _ascent_direction(y_hat, ys, rs)  # (b, d)
    return -torch.einsum("bi,bj->bij", direction, x)


def _ascent_direction(y_hat: torch.Tensor, ys: torch.Tensor, rs: torch.Tensor) -> torch.Tensor:
    """``sum_{k=1..N} (y_tau(k) - ybar_k)``: (b, d)."""
    order = ranking(rs)
    y_sorted = torch.gather(ys, 1, order[..., None].expand_as(ys))  # (b, n, d) in rank order
    s = torch.einsum("bd,bnd->bn", y_hat, y_sorted)  # (b, n)
    n = ys.shape[1]
    later = torch.ones(n, n, dtype=torch.bool, device=ys.device).triu()  # (k, j): j >= k
    weights = torch.softmax(
        s[:, None, :].masked_fill(~later[None], float("-inf")), dim=-1
    )  # (b, k, j)
    ybar = weights @ y_sorted  # (b, k, d)
    return (y_sorted - ybar).sum(1)


def gd_steps(
    y0: torch.Tensor, x: torch.Tensor, ys: torch.Tensor, rs: torch.Tensor, eta: float, steps: int
) -> torch.Tensor:
    """y_hat after `steps` explicit GD steps on the PL loss (any W with W x = y0 gives the same)."""
    y_hat = y0
    sq = x.pow(2).sum(-1, keepdim=True)  # (b, 1)
    for _ in range(steps):
        y_hat = y_hat + eta * sq * _ascent_direction(y_hat, ys, rs)
    return y_hat


# ---- the network --------------------------------------------------------------------------------


class Layout:
    """Slot positions in the residual stream for dimension d."""

    def __init__(self, d: int) -> None:
        self.d = d
        self.x = slice(0, d)
        self.y = slice(d, 2 * d)
        self.r, self.m, self.rmax = 2 * d, 2 * d + 1, 2 * d + 2
        self.acc = slice(2 * d + 3, 3 * d + 3)
        self.one, self.q = 3 * d + 3, 3 * d + 4
        self.width = 3 * d + 5


class HandAttention(nn.Module):
    """Multi-head attention with explicit per-head Q, K, V maps; bidirectional.

    ``linear=True`` replaces the softmax by the raw scores (the ablation)."""

    def __init__(self, width: int, head_dims: list[int], linear: bool = False) -> None:
        super().__init__()
        self.q = nn.ModuleList(nn.Linear(width, h, bias=False) for h in head_dims)
        self.k = nn.ModuleList(nn.Linear(width, h, bias=False) for h in head_dims)
        self.v = nn.ModuleList(
            nn.Linear(width, width, bias=False) for _ in head_dims
        )  # W_V W_O folded
        self.linear = linear
        for layer in [*self.q, *self.k, *self.v]:
            nn.init.zeros_(layer.weight)

    def forward(self, h: torch.Tensor) -> torch.Tensor:  # h: (b, t, width)
        out = torch.zeros_like(h)
        for wq, wk, wv in zip(self.q, self.k, self.v, strict=True):
            scores = wq(h) @ wk(h).transpose(1, 2)  # (b, t, t)
            pattern = scores if self.linear else torch.softmax(scores, dim=-1)
            out = out + pattern @ wv(h)  # (b, t, width)
        return out


class HandFFN(nn.Module):
    def __init__(self, width: int, hidden: int) -> None:
        super().__init__()
        self.up = nn.Linear(width, hidden, bias=False)
        self.down = nn.Linear(hidden, width, bias=False)
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.down.weight)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.down(torch.relu(self.up(h)))


class Block(nn.Module):
    def __init__(self, attn: HandAttention, ffn: HandFFN | None) -> None:
        super().__init__()
        self.attn, self.ffn = attn, ffn

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        h = h + self.attn(h)
        return h + self.ffn(h) if self.ffn is not None else h


def _block(
    lay: Layout,
    beta: float,
    c: float,
    gamma: float,
    g: float,
    *,
    heads: str,
    linear: bool,
    ffn: bool,
) -> Block:
    head_dims = {"both": [1, lay.d + 1], "selection": [1], "averaging": [lay.d + 1]}[heads]
    attn = HandAttention(lay.width, head_dims, linear=linear)
    wq = [cast(nn.Linear, m).weight for m in attn.q]  # (head dim, width) each
    wk = [cast(nn.Linear, m).weight for m in attn.k]
    wv = [cast(nn.Linear, m).weight for m in attn.v]  # (width, width) each: out x in
    with torch.no_grad():
        h = 0
        if heads in ("both", "selection"):  # logit beta (r_j - C m_j - C q_j), query side = 1
            wq[h][0, lay.one] = 1.0
            wk[h][0, lay.r] = beta
            wk[h][0, lay.m] = -beta * c
            wk[h][0, lay.q] = -beta * c
            v = wv[h]
            for i in range(lay.d):
                v[lay.acc.start + i, lay.y.start + i] = 1.0  # y_j -> acc
            v[lay.rmax, lay.r] = 1.0  # r_j -> rmax
            h += 1
        if heads in ("both", "averaging"):  # logit <y_hat, y_j> - C m_j - C q_j
            for i in range(lay.d):
                wq[h][i, lay.y.start + i] = 1.0
                wk[h][i, lay.y.start + i] = 1.0
            wq[h][lay.d, lay.one] = 1.0
            wk[h][lay.d, lay.m] = -c
            wk[h][lay.d, lay.q] = -c
            v = wv[h]
            for i in range(lay.d):
                v[lay.acc.start + i, lay.y.start + i] = -1.0  # -y_j -> acc
    net = HandFFN(lay.width, 3) if ffn else None
    if net is not None:
        with torch.no_grad():
            up, down = net.up.weight, net.down.weight  # (3, width), (width, 3)
            for unit, bias in ((0, 1.0), (1, 0.0)):  # bias - gamma (rmax - r_i) - G (m_i + q_i)
                up[unit, lay.one] = bias
                up[unit, lay.rmax] = -gamma
                up[unit, lay.r] = gamma
                up[unit, lay.m] = -g
                up[unit, lay.q] = -g
            up[2, lay.rmax] = 1.0  # ReLU(rmax) = rmax, rewards are >= 0
            down[lay.m, 0], down[lay.m, 1] = 1.0, -1.0
            down[lay.rmax, 2] = -1.0
    return Block(attn, net)


class PLGDTransformer(nn.Module):
    """`steps` stacks of N-1 blocks, each stack one GD step on the PL loss."""

    def __init__(
        self,
        d: int,
        n: int,
        eta: float,
        steps: int,
        *,
        beta: float = 1e9,
        c: float = 1e4,
        gamma: float = 1e9,
        g: float = 1e3,
        heads: str = "both",
        linear: bool = False,
        ffn: bool = True,
    ) -> None:
        super().__init__()
        if n < 2 or steps < 1:
            raise ValueError("need n >= 2 responses and steps >= 1")
        self.lay = Layout(d)
        self.d, self.n, self.eta, self.steps = d, n, eta, steps
        self.stacks = nn.ModuleList(
            nn.ModuleList(
                _block(self.lay, beta, c, gamma, g, heads=heads, linear=linear, ffn=ffn)
                for _ in range(n - 1)
            )
            for _ in range(steps)
        )

    def embed(
        self, x: torch.Tensor, ys: torch.Tensor, rs: torch.Tensor, y0: torch.Tensor
    ) -> torch.Tensor:
        lay, (b, n, _) = self.lay, ys.shape
        h = torch.zeros(b, n + 1, lay.width, dtype=ys.dtype, device=ys.device)  # (b, n+1, width)
        h[:, :, lay.x] = x[:, None, :]
        h[:, :n, lay.y] = ys
        h[:, n, lay.y] = y0
        h[:, :n, lay.r] = rs
        h[:, :, lay.one] = 1.0
        h[:, n, lay.q] = 1.0
        return h

    def update(self, h: torch.Tensor) -> torch.Tensor:
        """The read-out: ``eta ||x||^2 acc`` at the query token: (b, d)."""
        query = h[:, -1]
        return self.eta * query[:, self.lay.x].pow(2).sum(-1, keepdim=True) * query[:, self.lay.acc]

    def forward(
        self, x: torch.Tensor, ys: torch.Tensor, rs: torch.Tensor, y0: torch.Tensor
    ) -> torch.Tensor:
        lay = self.lay
        h = self.embed(x, ys, rs, y0)
        for stack in self.stacks:
            for block in cast(nn.ModuleList, stack):
                h = block(h)
            # write-back: the query's y slot takes the step; acc, masks and rmax are cleared
            h = h.clone()
            h[:, -1, lay.y] = h[:, -1, lay.y] + self.update(h)
            h[:, :, lay.acc] = 0
            h[:, :, lay.m] = 0
            h[:, :, lay.rmax] = 0
        return h[:, -1, lay.y]


def build_pl_gd_transformer(
    d: int, n: int, eta: float, steps: int, **sharpness: float
) -> PLGDTransformer:
    """The contract: ``forward(x (b,d), ys (b,n,d), rs (b,n), y0 (b,d))`` -> y_hat after `steps` GD
    steps on the PL loss. Sharpness: beta (selection), c (mask penalty), gamma and g (FFN).

    The defaults (beta = gamma = 1e9, c = 1e4, g = 1e3) make the selection hard for reward gaps
    down to about 4e-8 (beta * gap > 37) and the FFN's mask exact for gaps >= 1e-9 (gamma * gap
    >= 1): on i.i.d. U(0, 1) rewards (d = 5, N = 20, 100 problems, smallest gap ~4e-5) the
    network matches explicit GD to ~1e-15 in float64 after 1 and 3 steps. In float32 the same
    weights match to ~2e-7 (1 step) and ~6e-7 (3 steps): float32 rounding, not the construction;
    rewards closer than ~1e-7 are not separable in float32 at all."""
    return PLGDTransformer(d, n, eta, steps, **sharpness)  # type: ignore[arg-type]
