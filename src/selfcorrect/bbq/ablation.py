"""BBQ ablations (the paper's Figure 4): grids of study runs and their summary.

Each grid point is an ordinary, resumable BBQ run in ``<out>/<label>/``; the summary reads their
metrics only. Kinds:

- ``check-quality``: oracle checks with error rate p over a grid (check accuracy ~ 1 - p); the
  gain against the measured check accuracy, with a least-squares line and R^2 (is it linear?);
- ``rounds``: one run with R rounds; accuracy after each round;
- ``check-type``: natural-language self-check vs verdict-only self-check (and any others given);
- ``model-size``: the same study on several models, in the order given (smallest first);
- ``intrinsic-vs-oracle``: the same check (self by default) run two ways (Huang et al., ICLR
  2024): *intrinsic* (fixed rounds, the last answer is final) and *oracle-stopped* (a question
  stops as soon as the ground truth, BBQ's tolerant grader against the label, accepts its
  answer, which is kept; the model still reads only its own review, never the truth: see
  `selfcorrect.cac.checks.OracleStopCheck`; `selfcorrect bbq` takes it as `BBQConfig(stop="oracle")`). The gap between the two is the inflation an
  oracle stop adds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from selfcorrect.backends.base import get_backend
from selfcorrect.bbq.records import BBQMetrics
from selfcorrect.bbq.study import BBQConfig, run_bbq
from selfcorrect.runs import RunDir
from selfcorrect.specs import Spec, plain

KINDS = ("check-quality", "rounds", "check-type", "model-size", "intrinsic-vs-oracle")


def grid(
    kind: str,
    base: BBQConfig,
    *,
    error_rates: Sequence[float] = (0.0, 0.25, 0.5, 0.75, 1.0),
    checks: Sequence[str] = ("self", "verdict"),
    models: Sequence[str] = (),
) -> list[tuple[str, BBQConfig]]:
    """(label, config) for each run of the ablation."""
    if kind == "check-quality":
        bad = [p for p in error_rates if not 0 <= p <= 1]
        if bad:
            raise ValueError(f"oracle error rates must be in [0, 1], got {bad}")
        return [(f"oracle-p{p:g}", replace(base, check=f"oracle:{p:g}")) for p in error_rates]
    if kind == "rounds":
        return [(f"rounds-{base.rounds}", base)]
    if kind == "check-type":
        return [
            (f"check-{c.replace(':', '-').replace('/', '_')}", replace(base, check=c))
            for c in checks
        ]
    if kind == "model-size":
        if not models:
            raise ValueError("model-size needs at least one --models SPEC")
        return [
            (f"model-{i}-{m.replace('/', '_')}", replace(base, model=m))
            for i, m in enumerate(models)
        ]
    if kind == "intrinsic-vs-oracle":
        check = base.check
        assert isinstance(check, Spec)
        if check.kind in ("none", "oracle") or not base.rounds:
            raise ValueError(
                "intrinsic-vs-oracle needs at least one round of a check the model reads "
                "(--check self, verdict or model:SPEC)"
            )
        return [("intrinsic", base), ("oracle-stopped", replace(base, stop="oracle"))]
    raise ValueError(f"unknown ablation {kind!r}; use one of {', '.join(KINDS)}")


def _point(label: str, cfg: BBQConfig, metrics: dict[str, Any]) -> dict[str, Any]:
    m = BBQMetrics.from_dict(metrics)
    acc = [row.accuracy for row in m.per_round]
    check = m.check_accuracy[0] if m.check_accuracy else None
    return {
        "label": label,
        "model": cfg.model,
        "check": str(cfg.check),
        "n": m.n,
        "accuracy_by_round": acc,
        "accuracy_ci95_by_round": [row.accuracy_ci95 for row in m.per_round],
        "accuracy_official_by_round": [
            row.official.accuracy if row.official else None for row in m.per_round
        ],
        "gain": None if not acc or acc[0] is None or acc[-1] is None else acc[-1] - acc[0],
        "check_accuracy": check.accuracy if check else None,
        "check_judged": check.n if check else None,
    }


def linear_fit(xs: Sequence[float], ys: Sequence[float]) -> dict[str, float] | None:
    """Least-squares line y = a + b x and its R^2; None with fewer than 2 distinct x."""
    n = len(xs)
    if n < 2 or len(set(xs)) < 2:
        return None
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    sxy = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True))
    slope = sxy / sxx
    intercept = my - slope * mx
    ss_res = sum((y - intercept - slope * x) ** 2 for x, y in zip(xs, ys, strict=True))
    ss_tot = sum((y - my) ** 2 for y in ys)
    return {"intercept": intercept, "slope": slope, "r2": 1 - ss_res / ss_tot if ss_tot else 1.0}


def run_ablation(
    kind: str, base: BBQConfig, out: str | Path, *, progress: bool = True, **grid_options: Any
) -> dict[str, Any]:
    """Run (or resume) every grid point, then write ``ablation.json`` and the figure."""
    out = Path(out)
    points_cfg = grid(kind, base, **grid_options)  # validates the grid before any file
    root = RunDir.open(
        out,
        study="bbq-ablation",
        config={"kind": kind, "base": plain(base), "points": [label for label, _ in points_cfg]},
        model=base.model,
        seed=base.seed,
    )
    points = []
    backend = None
    if kind == "intrinsic-vs-oracle":  # both points share one model
        backend = get_backend(base.model, base_url=base.base_url, **base.backend_options)
    for label, cfg in points_cfg:
        metrics = run_bbq(cfg, out / label, backend=backend, progress=progress)
        point = _point(label, cfg, metrics)
        if cfg.stop == "oracle":
            point["check"] = f"{cfg.check} (oracle-stopped)"
            point["stopped_early"] = metrics["stopped_early"]
        points.append(point)
    summary: dict[str, Any] = {"kind": kind, "points": points}
    if kind == "check-quality":
        usable = [p for p in points if p["check_accuracy"] is not None and p["gain"] is not None]
        summary["fit_gain_vs_check_accuracy"] = linear_fit(
            [p["check_accuracy"] for p in usable], [p["gain"] for p in usable]
        )
    root.write_json("ablation.json", summary)
    root.finish(points=len(points))
    from selfcorrect.report import build_report

    build_report(out, extra=[out / label for label, _ in points_cfg])
    return summary
