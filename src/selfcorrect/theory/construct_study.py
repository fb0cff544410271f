"""Checks of the explicit construction: match with GD vs sharpness and steps, BT, ablations,
reward noise, and a comparison with the trained transformer on the task's evaluation set.

`run_construction` writes them as a run directory (`selfcorrect.runs.RunDir`, study
``construct``): ``config.yaml``, ``manifest.json``, ``construct.json`` and the plots."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from selfcorrect.theory.construction import build_pl_gd_transformer, gd_steps
from selfcorrect.theory.evaluate import EVAL_SEED
from selfcorrect.theory.task import TaskBatch, sample_task

ABLATIONS: dict[str, dict[str, Any]] = {
    "full": {},
    "linear attention": {"linear": True},
    "one head (selection only)": {"heads": "selection"},
    "one head (averaging only)": {"heads": "averaging"},
    "no FFN": {"ffn": False},
}


def problems(
    b: int,
    d: int,
    n: int,
    *,
    seed: int = 0,
    dtype: torch.dtype = torch.float64,
    min_gap: bool = True,
) -> dict[str, torch.Tensor]:
    """Seeded random problems. With `min_gap`, rewards are a random order of n evenly spaced
    levels plus jitter, so adjacent rewards differ by >= 0.5/n (hard selection needs
    beta * gap >> 1 and gamma * gap > 1); otherwise i.i.d. U(0, 1)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(b, d, generator=g, dtype=dtype)
    ys = torch.randn(b, n, d, generator=g, dtype=dtype)
    if min_gap:
        order = torch.argsort(torch.rand(b, n, generator=g), dim=-1).to(dtype)
        rs = (order + 0.25 + 0.5 * torch.rand(b, n, generator=g, dtype=dtype)) / n
    else:
        rs = torch.rand(b, n, generator=g, dtype=dtype)
    y0 = 0.1 * torch.randn(b, d, generator=g, dtype=dtype)
    return {"x": x, "ys": ys, "rs": rs, "y0": y0}


def min_reward_gap(rs: torch.Tensor) -> float:
    srt = rs.sort(-1).values
    return float((srt[:, 1:] - srt[:, :-1]).min())


def max_error(p: dict[str, torch.Tensor], eta: float, steps: int, **kw: Any) -> float:
    net = build_pl_gd_transformer(p["x"].shape[1], p["ys"].shape[1], eta, steps, **kw).to(
        p["x"].dtype
    )
    with torch.no_grad():
        out = net(p["x"], p["ys"], p["rs"], p["y0"])
    return float((out - gd_steps(p["y0"], p["x"], p["ys"], p["rs"], eta, steps)).abs().max())


def error_table(
    *,
    d: int = 5,
    n: int = 20,
    eta: float = 0.01,
    steps: Sequence[int] = (1, 3),
    betas: Sequence[float] = (10, 100, 1e3, 1e4, 1e6, 1e9),
    n_problems: int = 100,
    seed: int = 0,
    dtype: torch.dtype = torch.float64,
) -> dict[str, Any]:
    """max |TF - GD| over the problems, against beta and steps, on rewards with a minimum gap
    (``by_beta``) and on i.i.d. U(0, 1) rewards (``iid``); BT (N = 2); ablations (at the largest
    beta). The other sharpness constants are the network's defaults."""
    p = problems(n_problems, d, n, seed=seed, dtype=dtype)
    p_iid = problems(n_problems, d, n, seed=seed, dtype=dtype, min_gap=False)
    p_bt = problems(n_problems, d, 2, seed=seed + 1, dtype=dtype)
    sharp = max(betas)
    return {
        "d": d,
        "n": n,
        "eta": eta,
        "problems": n_problems,
        "dtype": str(dtype).replace("torch.", ""),
        "min_reward_gap": min_reward_gap(p["rs"]),
        "min_reward_gap_iid": min_reward_gap(p_iid["rs"]),
        "iid": [
            {"steps": t, "beta": beta, "max_abs_error": max_error(p_iid, eta, t, beta=beta)}
            for t in steps
            for beta in betas
        ],
        "by_beta": [
            {"steps": t, "beta": beta, "max_abs_error": max_error(p, eta, t, beta=beta)}
            for t in steps
            for beta in betas
        ],
        "bt": [
            {"steps": t, "beta": beta, "max_abs_error": max_error(p_bt, eta, t, beta=beta)}
            for t in steps
            for beta in betas
        ],
        "ablations": [
            {
                "variant": name,
                "beta": sharp,
                "steps": 1,
                "max_abs_error": max_error(p, eta, 1, beta=sharp, **kw),
            }
            for name, kw in ABLATIONS.items()
        ],
    }


def evaluation_set(
    b: int, d: int, n: int, *, noise: float = 0.0, dtype: torch.dtype = torch.float64
) -> TaskBatch:
    """The `b` evaluation sequences the trained transformer is scored on (`evaluate` with
    ``n_eval=b`` draws them in float32; a float64 draw from the same seed gives other numbers),
    cast to `dtype`."""
    batch = sample_task(
        b, n_dims=d, n_points=n, noise=noise, generator=torch.Generator().manual_seed(EVAL_SEED)
    )
    return TaskBatch(*(t.to(dtype) for t in (batch.xs, batch.ys, batch.rs, batch.y_star)))


def noise_sweep(
    *,
    noise_levels: Sequence[float] = (0, 0.25, 0.5, 0.75, 1),
    d: int = 5,
    n: int = 20,
    eta: float = 0.01,
    steps: int = 1,
    n_problems: int = 256,
    dtype: torch.dtype = torch.float64,
) -> list[dict[str, float]]:
    """On the task: the network (default sharpness) vs GD on the *noisy* ranking, and both
    against y*, `steps` GD steps from zero, in `dtype`."""
    rows = []
    for noise in noise_levels:
        batch = evaluation_set(n_problems, d, n, noise=noise, dtype=dtype)
        x, y0 = batch.xs[:, 0], torch.zeros(n_problems, d, dtype=dtype)
        net = build_pl_gd_transformer(d, n, eta, steps).to(dtype)
        with torch.no_grad():
            out = net(x, batch.ys, batch.rs, y0)
        gd = gd_steps(y0, x, batch.ys, batch.rs, eta, steps)
        err = 1 - F.cosine_similarity(out, batch.y_star, dim=-1)
        rows.append(
            {
                "noise": noise,
                "error_vs_y_star": float(err.mean()),
                "stderr": float(err.std() / n_problems**0.5),
                "mean_abs_diff_to_gd": float((out - gd).abs().mean()),
            }
        )
    return rows


def curve_vs_t(
    *,
    d: int = 5,
    n: int = 20,
    eta: float = 0.01,
    steps: int = 1,
    n_problems: int = 256,
    dtype: torch.dtype = torch.float64,
) -> list[dict[str, float]]:
    """Error ``1 - cos(y_hat_t, y*)`` of the constructed network (`steps` GD steps, in `dtype`)
    using the first t examples (t = 2..n-1), on the same evaluation set as the trained
    transformer."""
    batch = evaluation_set(n_problems, d, n, dtype=dtype)
    x, y0 = batch.xs[:, 0], torch.zeros(n_problems, d, dtype=dtype)
    rows = []
    for t in range(2, n):
        net = build_pl_gd_transformer(d, t, eta, steps).to(dtype)
        with torch.no_grad():
            out = net(x, batch.ys[:, :t], batch.rs[:, :t], y0)
        err = 1 - F.cosine_similarity(out, batch.y_star, dim=-1)
        rows.append(
            {"t": t, "error": float(err.mean()), "stderr": float(err.std() / n_problems**0.5)}
        )
    return rows


def run_construction(
    out: str | Path,
    *,
    d: int = 5,
    n: int = 20,
    eta: float = 0.01,
    steps: Sequence[int] = (1, 3),
    betas: Sequence[float] = (10, 100, 1e3, 1e4, 1e6, 1e9),
    n_problems: int = 100,
    dtype: str = "float64",
    compare: str | Path | None = None,
) -> dict[str, Any]:
    """The error table, the noise sweep and plots in the run directory `out` (study
    ``construct``); with `compare` (a trained model directory), also the error curves of the
    constructed and the trained transformer on the same evaluation set. Returns the table.

    The noise sweep and the comparison use `n_problems` and `dtype` too, and the smallest of
    `steps` (the plot draws one sweep); ``construct.json`` records their settings under
    ``noise_settings``."""
    from selfcorrect.report.plots import construction_plots
    from selfcorrect.runs import RunDir

    if dtype not in ("float64", "float32"):
        raise ValueError(f"dtype must be float64 or float32, got {dtype!r}")
    run = RunDir.open(
        out,
        study="construct",
        config={
            "d": d,
            "n": n,
            "steps": list(steps),
            "betas": list(betas),
            "eta": eta,
            "problems": n_problems,
            "dtype": dtype,
            "compare": str(compare) if compare is not None else None,
        },
        model="constructed PL-GD transformer",
        seed=0,
    )
    table = error_table(
        d=d,
        n=n,
        eta=eta,
        steps=steps,
        betas=betas,
        n_problems=n_problems,
        dtype=getattr(torch, dtype),
    )
    sweep = {"steps": min(steps), "problems": n_problems, "dtype": dtype}
    table["noise_settings"] = sweep
    table["noise"] = noise_sweep(
        d=d, n=n, eta=eta, steps=min(steps), n_problems=n_problems, dtype=getattr(torch, dtype)
    )
    run.write_json("construct.json", table)
    construction_plots(table, run.path)
    if compare is not None:
        compare_with_trained(
            Path(compare),
            run.path,
            eta,
            steps=min(steps),
            n_problems=n_problems,
            dtype=getattr(torch, dtype),
        )
    run.finish()
    return table


def compare_with_trained(
    model_dir: Path,
    out: Path,
    eta: float,
    *,
    steps: int = 1,
    n_problems: int = 256,
    dtype: torch.dtype = torch.float64,
) -> None:
    """Error vs t of the constructed network (`steps` GD steps from y0 = 0 on the first t
    examples, in `dtype`), the trained transformer and the GD baseline, on the same
    `n_problems` evaluation sequences."""
    from selfcorrect.report.plots import theory_panel
    from selfcorrect.theory.baselines import GDPredictor
    from selfcorrect.theory.evaluate import evaluate, write_curves
    from selfcorrect.theory.train import load_model

    model, cfg = load_model(model_dir)
    m = cfg.model
    rows: list[dict[str, Any]] = evaluate(
        {"trained TF": model, "GD (50 Adam steps, lr 0.1)": GDPredictor("adam")},
        n_eval=n_problems,
        n_dims=m.n_dims,
        n_points=m.n_points,
    )
    rows = [r for r in rows if int(r["t"]) >= 2]
    label = f"{steps} GD step{'s' if steps > 1 else ''}"
    rows += [
        {"predictor": f"constructed TF ({label}, eta {eta:g})", "noise": 0.0, **r}
        for r in curve_vs_t(
            d=m.n_dims, n=m.n_points, eta=eta, steps=steps, n_problems=n_problems, dtype=dtype
        )
    ]
    write_curves(rows, out / "compare_curves.csv")
    theory_panel(rows, "construct", "constructed vs trained transformer", out)
