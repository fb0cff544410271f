"""Training the alignment transformer: a plain loop, checkpoint + resume, CSV log.

Recipe (default): AdamW with linear warm-up and cosine decay, gradient clipping, a fresh seeded
batch per step, evaluation on a fixed seeded set. ``recipe="paper"`` reproduces the original:
Adam at a constant lr (1e-4 in the paper presets), no warm-up, no clipping.
"""

from __future__ import annotations

import csv
import math
import time
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import torch
import yaml

from selfcorrect.theory.evaluate import EVAL_SEED, error_curve
from selfcorrect.theory.losses import pl_loss_prefixes
from selfcorrect.theory.model import AlignmentTransformer, ModelConfig
from selfcorrect.theory.task import sample_task


@dataclass(frozen=True)
class TrainConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    steps: int = 1200
    batch_size: int = 256
    lr: float = 1e-3
    weight_decay: float = 0.0
    warmup: int = 100
    min_lr_ratio: float = 0.1
    grad_clip: float = 1.0
    recipe: str = "ours"  # or "paper": Adam, constant lr, no warm-up, no clipping
    score: str = "cosine"
    train_noise: float = 0.0
    seed: int = 0
    eval_every: int = 100
    eval_size: int = 256
    checkpoint_every: int = 100
    bf16: bool = False  # bfloat16 autocast on the CPU
    device: str = "cpu"

    def __post_init__(self) -> None:
        if self.recipe not in ("ours", "paper"):
            raise ValueError(f"recipe must be ours or paper, got {self.recipe!r}")
        if self.steps < 1 or self.batch_size < 1:
            raise ValueError("steps and batch_size must be >= 1")


def config_from_dict(data: dict[str, Any]) -> TrainConfig:
    """Build a config from a preset dict; unknown keys are errors."""
    data = dict(data)
    model_keys = {f.name for f in fields(ModelConfig)}
    train_keys = {f.name for f in fields(TrainConfig)} - {"model"}
    model_data = dict(data.pop("model", {}) or {})
    unknown = (set(data) - train_keys) | (set(model_data) - model_keys)
    if unknown:
        raise ValueError(f"unknown config key(s): {', '.join(sorted(unknown))}")
    return TrainConfig(model=ModelConfig(**model_data), **data)


def override(cfg: TrainConfig, assignments: list[str]) -> TrainConfig:
    """Apply ``key=value`` (``model.n_layer=4``) overrides, values parsed as YAML scalars."""
    data = asdict(cfg)
    for item in assignments:
        key, sep, raw = item.partition("=")
        if not sep:
            raise ValueError(f"--set {item!r} must look like key=value")
        value = yaml.safe_load(raw)
        target = data
        parts = key.strip().split(".")
        for part in parts[:-1]:
            if not isinstance(target.get(part), dict):
                raise ValueError(f"unknown config key {key!r}")
            target = target[part]
        if parts[-1] not in target:
            raise ValueError(f"unknown config key {key!r}")
        target[parts[-1]] = value
    return config_from_dict(data)


def lr_at(cfg: TrainConfig, step: int) -> float:
    if cfg.recipe == "paper":
        return cfg.lr
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    progress = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
    return cfg.lr * (
        cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))
    )


def eval_error(model: AlignmentTransformer, cfg: TrainConfig, t: int | None = None) -> float:
    """Mean error at t (default n-5, the paper's t = 15 for n = 20) on the fixed evaluation set."""
    m = cfg.model
    batch = sample_task(
        cfg.eval_size,
        n_dims=m.n_dims,
        n_points=m.n_points,
        generator=torch.Generator().manual_seed(EVAL_SEED),
    ).to(cfg.device)
    model.eval()
    with torch.no_grad():
        mean, _ = error_curve(model(batch.xs, batch.ys, batch.rs).float(), batch.y_star)
    model.train()
    return float(mean[t if t is not None else m.n_points - 5])


def train(
    cfg: TrainConfig,
    out: str | Path,
    *,
    progress: bool = True,
    stop_below: float | None = None,
) -> AlignmentTransformer:
    """Train into `out` (``config.yaml``, ``checkpoint.pt``, ``train_log.csv``); resumes.

    ``seconds`` in the log is training wall time summed over resumed runs. With `stop_below`,
    training stops at the first evaluation whose error at t is at or below it (time-to-target);
    a later call with the same config resumes from there.
    """
    from tqdm import tqdm

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    saved = out / "config.yaml"
    resolved = asdict(cfg)
    if saved.exists() and yaml.safe_load(saved.read_text()) != resolved:
        raise ValueError(f"{out} holds a model trained with another config; use another --out")
    saved.write_text(yaml.safe_dump(resolved, sort_keys=False))
    torch.manual_seed(cfg.seed)
    model = AlignmentTransformer(cfg.model).to(cfg.device)
    if cfg.recipe == "paper":
        opt: torch.optim.Optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    else:
        opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    gen = torch.Generator().manual_seed(cfg.seed)
    step = 0
    done_s = 0.0  # training seconds before this call (from the checkpoint)
    ckpt = out / "checkpoint.pt"
    if ckpt.exists():
        state = torch.load(ckpt, map_location=cfg.device, weights_only=False)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        gen.set_state(state["generator"])
        step = int(state["step"])
        done_s = float(state.get("seconds", 0.0))
    log = out / "train_log.csv"
    if step == 0 or not log.exists():
        log.write_text("step,loss,lr,eval_error_t,seconds\n")
    else:  # drop rows logged after the checkpoint we resume from (they are redone)
        rows = log.read_text().splitlines()
        kept = [rows[0]] + [r for r in rows[1:] if r and int(r.split(",")[0]) <= step]
        log.write_text("\n".join(kept) + "\n")
    bar = tqdm(total=cfg.steps, initial=step, disable=not progress, unit="step", dynamic_ncols=True)
    m = cfg.model
    start = time.perf_counter()
    while step < cfg.steps:
        lr = lr_at(cfg, step)
        for group in opt.param_groups:
            group["lr"] = lr
        batch = sample_task(
            cfg.batch_size,
            n_dims=m.n_dims,
            n_points=m.n_points,
            noise=cfg.train_noise,
            generator=gen,
        ).to(cfg.device)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=cfg.bf16):
            pred = model(batch.xs, batch.ys, batch.rs)
        loss = pl_loss_prefixes(pred.float(), batch.ys, batch.rs, cfg.score)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.recipe != "paper" and cfg.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        step += 1
        bar.update(1)
        evaluated = ""
        reached = False
        if step % cfg.eval_every == 0 or step == cfg.steps:
            err = eval_error(model, cfg)
            evaluated = f"{err:.4f}"
            reached = stop_below is not None and err <= stop_below
            bar.set_postfix(loss=f"{loss.item():.3f}", err_t=evaluated)
        seconds = done_s + time.perf_counter() - start
        with open(log, "a") as fh:
            csv.writer(fh).writerow(
                [
                    step,
                    f"{loss.item():.5f}",
                    f"{lr:.3g}",
                    evaluated,
                    f"{seconds:.2f}",
                ]
            )
        if step % cfg.checkpoint_every == 0 or step == cfg.steps or reached:
            tmp = ckpt.with_suffix(".tmp")
            torch.save(
                {
                    "model": model.state_dict(),
                    "opt": opt.state_dict(),
                    "generator": gen.get_state(),
                    "step": step,
                    "seconds": seconds,
                },
                tmp,
            )
            tmp.replace(ckpt)
        if reached:
            break
    bar.close()
    model.eval()
    return model


def load_model(out: str | Path) -> tuple[AlignmentTransformer, TrainConfig]:
    out = Path(out)
    cfg = config_from_dict(yaml.safe_load((out / "config.yaml").read_text()))
    state = torch.load(out / "checkpoint.pt", map_location="cpu", weights_only=False)
    model = AlignmentTransformer(cfg.model)
    model.load_state_dict(state["model"])
    model.eval()
    return model, replace(cfg, device="cpu")
