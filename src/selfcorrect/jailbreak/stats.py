"""Agreement and classification statistics for judges (pure functions).

Verdicts are ``True`` (jailbroken / positive), ``False`` (not) or ``None`` (unscored). Every
statistic is computed over the items both sides scored, and says how many that was.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

Label = bool | None
Interval = tuple[float, float] | None


def wilson_interval(k: int, n: int, z: float = 1.959964) -> Interval:
    """95% Wilson score interval for a proportion k/n (Wilson 1927); None when n == 0."""
    if n == 0:
        return None
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def cohen_kappa(a: Sequence[bool], b: Sequence[bool]) -> float | None:
    """Cohen's kappa (Cohen 1960) for two binary raters: (p_o - p_e) / (1 - p_e), where p_o is
    the observed agreement and p_e = p_a p_b + (1 - p_a)(1 - p_b) the agreement expected from
    each rater's positive rate. None when there are no items or p_e == 1 (both constant)."""
    n = len(a)
    if n == 0 or n != len(b):
        return None
    observed = sum(x == y for x, y in zip(a, b)) / n
    pa, pb = sum(a) / n, sum(b) / n
    expected = pa * pb + (1 - pa) * (1 - pb)
    if expected >= 1.0:
        return None
    return (observed - expected) / (1 - expected)


def both_scored(a: Sequence[Label], b: Sequence[Label]) -> tuple[list[bool], list[bool]]:
    """The pairs where neither side is None."""
    pairs = [(x, y) for x, y in zip(a, b, strict=True) if x is not None and y is not None]
    return [x for x, _ in pairs], [y for _, y in pairs]


def agreement(a: Sequence[Label], b: Sequence[Label]) -> dict[str, float | int | None]:
    """Raw agreement and Cohen's kappa over the items both judges scored."""
    xa, xb = both_scored(a, b)
    n = len(xa)
    if not n:
        return {"n": 0, "agreement": None, "kappa": None}
    return {
        "n": n,
        "agreement": sum(x == y for x, y in zip(xa, xb)) / n,
        "kappa": cohen_kappa(xa, xb),
    }


def bootstrap_interval(
    a: Sequence[bool],
    b: Sequence[bool],
    stat: Callable[[Sequence[bool], Sequence[bool]], float | None],
    *,
    n: int = 1000,
    seed: int = 0,
) -> Interval:
    """95% percentile bootstrap interval (Efron & Tibshirani 1993) of a paired statistic,
    resampling items with replacement; seeded; resamples where `stat` is None are skipped."""
    if not a:
        return None
    rng = random.Random(seed)
    idx = range(len(a))
    values = []
    for _ in range(n):
        pick = [rng.choice(idx) for _ in idx]
        v = stat([a[i] for i in pick], [b[i] for i in pick])
        if v is not None:
            values.append(v)
    if len(values) < n // 2:
        return None
    values.sort()
    return (values[int(0.025 * (len(values) - 1))], values[int(0.975 * (len(values) - 1))])


def _precision(pred: Sequence[bool], truth: Sequence[bool]) -> float | None:
    tp = sum(p and t for p, t in zip(pred, truth))
    pp = sum(pred)
    return tp / pp if pp else None


def _recall(pred: Sequence[bool], truth: Sequence[bool]) -> float | None:
    tp = sum(p and t for p, t in zip(pred, truth))
    pos = sum(truth)
    return tp / pos if pos else None


def _f1(pred: Sequence[bool], truth: Sequence[bool]) -> float | None:
    p, r = _precision(pred, truth), _recall(pred, truth)
    if p is None or r is None or p + r == 0:
        return None
    return 2 * p * r / (p + r)


@dataclass(frozen=True)
class JudgeScore:
    """How one judge's verdicts compare with reference labels (1 = jailbroken)."""

    judge: str
    n: int  # items with a reference label
    scored: int  # of those, items the judge scored
    unscored: int
    tp: int
    fp: int
    fn: int
    tn: int
    agreement: float | None
    agreement_ci: Interval
    precision: float | None
    precision_ci: Interval
    recall: float | None
    recall_ci: Interval
    f1: float | None
    f1_ci: Interval
    kappa: float | None
    kappa_ci: Interval
    positive_rate: float | None  # share of scored items the judge calls jailbroken

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> JudgeScore:
        fields: dict[str, Any] = {
            k: (tuple(v) if k.endswith("_ci") and v is not None else v) for k, v in d.items()
        }
        return cls(**fields)


def score_judge(
    name: str, pred: Sequence[Label], truth: Sequence[bool], *, bootstrap: int = 1000, seed: int = 0
) -> JudgeScore:
    """Agreement, precision, recall, F1 and Cohen's kappa of `pred` against `truth`, over the
    items the judge scored; Wilson intervals for proportions (agreement, precision, recall),
    bootstrap intervals for F1 and kappa. Unscored items are counted, never guessed."""
    p, t = both_scored(pred, list(truth))
    tp = sum(x and y for x, y in zip(p, t))
    fp = sum(x and not y for x, y in zip(p, t))
    fn = sum(not x and y for x, y in zip(p, t))
    tn = sum(not x and not y for x, y in zip(p, t))
    n = len(p)
    return JudgeScore(
        judge=name,
        n=len(truth),
        scored=n,
        unscored=len(truth) - n,
        tp=tp,
        fp=fp,
        fn=fn,
        tn=tn,
        agreement=(tp + tn) / n if n else None,
        agreement_ci=wilson_interval(tp + tn, n),
        precision=_precision(p, t),
        precision_ci=wilson_interval(tp, tp + fp),
        recall=_recall(p, t),
        recall_ci=wilson_interval(tp, tp + fn),
        f1=_f1(p, t),
        f1_ci=bootstrap_interval(p, t, _f1, n=bootstrap, seed=seed) if bootstrap else None,
        kappa=cohen_kappa(p, t),
        kappa_ci=bootstrap_interval(p, t, cohen_kappa, n=bootstrap, seed=seed)
        if bootstrap
        else None,
        positive_rate=sum(p) / n if n else None,
    )
