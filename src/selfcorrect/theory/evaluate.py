"""Evaluation: error ``1 - cos(y_hat_t, y*)`` against the number t of in-context examples,
for every predictor and reward-noise level, on a fixed seeded evaluation set."""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from selfcorrect.theory.task import sample_task

Predictor = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
EVAL_SEED = 10_007  # evaluation data never overlaps a training stream seeded from 0..9999


def sequence_errors(pred: torch.Tensor, y_star: torch.Tensor) -> torch.Tensor:
    """``1 - cos(pred[:, t], y*)`` of every sequence and position: (b, n)."""
    return 1 - F.cosine_similarity(
        pred, y_star[:, None, :].expand_as(pred), dim=-1, eps=1e-8
    )  # (b, n)


def error_curve(pred: torch.Tensor, y_star: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and standard error over the batch of ``1 - cos(pred[:, t], y*)``: two (n,) tensors."""
    err = sequence_errors(pred, y_star)  # (b, n)
    return err.mean(0), err.std(0) / err.shape[0] ** 0.5


@dataclass(frozen=True)
class Scored:
    """One predictor's errors at one reward-noise level: ``errors[i, t]`` for evaluation
    sequence i with t examples in context, (b, n) on the CPU. Every predictor is scored on the
    same sequences, so errors of two predictors can be compared sequence by sequence."""

    predictor: str
    noise: float
    errors: torch.Tensor  # (b, n)


def score(
    predictors: dict[str, Predictor],
    *,
    noise_levels: Iterable[float] = (0.0,),
    n_eval: int = 256,
    n_dims: int = 5,
    n_points: int = 20,
    seed: int = EVAL_SEED,
    device: str = "cpu",
) -> Iterator[Scored]:
    """The per-sequence errors of every predictor at every noise level.

    The clean part of the evaluation set is the same for every noise level (same seed); it is
    drawn on the CPU and moved to `device`, where the predictors run."""
    for noise in noise_levels:
        batch = sample_task(
            n_eval,
            n_dims=n_dims,
            n_points=n_points,
            noise=noise,
            generator=torch.Generator().manual_seed(seed),
        ).to(device)
        for name, predictor in predictors.items():
            with torch.no_grad():
                pred = predictor(batch.xs, batch.ys, batch.rs)  # (b, n, d)
            yield Scored(name, noise, sequence_errors(pred.float().cpu(), batch.y_star.cpu()))


def curve_rows(scored: Iterable[Scored]) -> list[dict[str, float | str | int]]:
    """Rows ``predictor, noise, t, error, stderr`` for t = 1..n-1 (t examples in context): the
    mean over the sequences and its standard error."""
    rows: list[dict[str, float | str | int]] = []
    for item in scored:
        b, n = item.errors.shape
        mean, se = item.errors.mean(0), item.errors.std(0) / b**0.5
        for t in range(1, n):
            rows.append(
                {
                    "predictor": item.predictor,
                    "noise": item.noise,
                    "t": t,
                    "error": float(mean[t]),
                    "stderr": float(se[t]),
                }
            )
    return rows


def evaluate(
    predictors: dict[str, Predictor], **options: Any
) -> list[dict[str, float | str | int]]:
    """Rows ``predictor, noise, t, error, stderr`` for t = 1..n-1: `curve_rows` of
    `score(predictors, **options)` (noise levels, n_eval, n_dims, n_points, seed, device)."""
    return curve_rows(score(predictors, **options))


def write_curves(rows: Sequence[dict[str, float | str | int]], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["predictor", "noise", "t", "error", "stderr"])
        writer.writeheader()
        writer.writerows(rows)


def read_curves(path: Path) -> list[dict[str, float | str | int]]:
    with open(path, newline="") as fh:
        return [
            {
                "predictor": r["predictor"],
                "noise": float(r["noise"]),
                "t": int(r["t"]),
                "error": float(r["error"]),
                "stderr": float(r["stderr"]),
            }
            for r in csv.DictReader(fh)
        ]
