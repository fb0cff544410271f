"""Training the alignment transformer: a plain loop in small named steps (nanoGPT style).

A training run is a run directory (`selfcorrect.runs.RunDir`, study ``theory-train``):
``config.yaml`` (the resolved config, device left out), ``manifest.json`` (versions, wall time,
final error), ``checkpoint.pt`` (model, optimiser, data generator, step, seconds; loaded with
``weights_only=True``), optional ``model_step<N>.pt`` snapshots, and ``train_log.csv``.
Rerunning the same config resumes from the checkpoint; another config is refused. A run that
is already complete is reused as it is: its manifest keeps the record of the calls that trained
it (versions, devices, thread counts, finish time).

Recipes: see `TrainConfig`. Everything runs on ``cfg.device`` (``cpu`` or ``cuda``; bf16
autocast follows the device's type); the data generator stays on the CPU, so a run draws the same
batches on any device.
"""

from __future__ import annotations

import csv
import re
import time
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
import yaml

from selfcorrect.runfiles import read_json_file, write_text_atomic
from selfcorrect.runs import RunDir, resolved_config
from selfcorrect.theory.checkpoint import (
    CHECKPOINT,
    CheckpointError,
    load_checkpoint,
    save_checkpoint,
)
from selfcorrect.theory.config import (
    TrainConfig,
    config_from_dict,
    examples_at,
    lr_at,
    override,
    upgrade_saved,
)
from selfcorrect.theory.evaluate import EVAL_SEED, error_curve
from selfcorrect.theory.losses import pl_loss_prefixes
from selfcorrect.theory.model import AlignmentTransformer
from selfcorrect.theory.task import TaskBatch, sample_task

__all__ = [
    "TrainConfig",
    "TrainedModel",
    "config_from_dict",
    "eval_error",
    "load_model",
    "load_trained",
    "lr_at",
    "override",
    "train",
]
STUDY = "theory-train"
LOG = "train_log.csv"
LOG_FIELDS = ["step", "loss", "lr", "examples", "eval_error_t", "seconds"]


@dataclass
class Progress:
    step: int = 0
    seconds: float = 0.0  # training wall time before this call (summed over resumed runs)


# ---- steps ----------------------------------------------------------------------------------


def resolve_device(device: str) -> torch.device:
    """The device to run on; a CUDA device on a machine without one is a one-line error."""
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} asked for, but this machine has no CUDA GPU")
    return dev


def autocast(cfg: TrainConfig) -> AbstractContextManager[Any]:
    """bf16 autocast on the configured device's type (cpu or cuda) with ``cfg.bf16``; else none."""
    if not cfg.bf16:
        return nullcontext()
    return torch.autocast(torch.device(cfg.device).type, dtype=torch.bfloat16)


def open_run(cfg: TrainConfig, out: Path) -> RunDir:
    """Create or reopen the run directory; a config saved by an older version is upgraded."""
    saved = out / "config.yaml"
    if saved.exists():
        saved_config(saved, cfg)
    m = cfg.model
    name = f"{m.n_embd}/{m.n_layer}/{m.n_head} {m.attention}{'' if m.ffn else ' no-FFN'}"
    return RunDir.open(out, study=STUDY, config=cfg.identity(), model=name, seed=cfg.seed)


def saved_config(saved: Path, cfg: TrainConfig) -> dict[str, Any]:
    """A run's ``config.yaml``, upgraded to `cfg`'s fields (`upgrade_saved`; rewritten when that
    fills anything in)."""
    data = _read_config(saved)
    if not data:
        return data
    upgraded = upgrade_saved(data, {"study": STUDY, **cfg.identity()})
    if upgraded != data:
        write_text_atomic(saved, yaml.safe_dump(upgraded, sort_keys=False))
    return upgraded


def _read_config(path: Path) -> dict[str, Any]:
    """A run's ``config.yaml`` as a mapping; anything else is one line naming the file."""
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: not a readable config ({type(exc).__name__})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: not a config mapping")
    return data


def build(cfg: TrainConfig) -> tuple[AlignmentTransformer, torch.optim.Optimizer]:
    """The seeded model on its device and its optimiser (Adam for the paper recipe, else AdamW)."""
    torch.manual_seed(cfg.seed)
    model = AlignmentTransformer(cfg.model).to(cfg.device)
    if cfg.recipe == "paper":
        return model, torch.optim.Adam(model.parameters(), lr=cfg.lr)
    return model, torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)


def resume(
    run: RunDir,
    model: torch.nn.Module,
    opt: torch.optim.Optimizer,
    gen: torch.Generator,
    cfg: TrainConfig,
) -> Progress:
    """Restore model, optimiser and data stream from ``checkpoint.pt`` if there is one."""
    path = run.path / CHECKPOINT
    if not path.exists():
        return Progress()
    state = load_checkpoint(path, need=("model", "opt", "generator", "step", "seconds"))
    model.load_state_dict(state["model"])
    opt.load_state_dict(state["opt"])
    gen.set_state(state["generator"].cpu())
    return Progress(step=int(state["step"]), seconds=float(state["seconds"]))


def next_batch(cfg: TrainConfig, gen: torch.Generator, step: int) -> TaskBatch:
    """A fresh seeded batch (drawn on the CPU generator), on the training device."""
    return sample_task(
        cfg.batch_size,
        n_dims=cfg.model.n_dims,
        n_points=examples_at(cfg, step),
        noise=cfg.train_noise,
        generator=gen,
    ).to(cfg.device)


def train_step(
    model: AlignmentTransformer,
    opt: torch.optim.Optimizer,
    batch: TaskBatch,
    cfg: TrainConfig,
    lr: float,
) -> torch.Tensor:
    """One optimiser step on the PL loss over prefixes; returns the (detached) loss."""
    for group in opt.param_groups:
        group["lr"] = lr
    with autocast(cfg):
        pred = model(batch.xs, batch.ys, batch.rs)
    loss = pl_loss_prefixes(pred.float(), batch.ys, batch.rs, cfg.score)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    if cfg.recipe != "paper" and cfg.grad_clip > 0:
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
    opt.step()
    return loss.detach()


def eval_error(model: AlignmentTransformer, cfg: TrainConfig, t: int | None = None) -> float:
    """Mean error at t (default n-5, the paper's t = 15 for n = 20) on the fixed evaluation set."""
    m = cfg.model
    batch = sample_task(
        cfg.eval_size,
        n_dims=m.n_dims,
        n_points=m.n_points,
        generator=torch.Generator().manual_seed(EVAL_SEED),
    ).to(cfg.device)
    was_training = model.training
    model.eval()
    with torch.no_grad(), autocast(cfg):
        mean, _ = error_curve(model(batch.xs, batch.ys, batch.rs).float(), batch.y_star)
    model.train(was_training)
    return float(mean[t if t is not None else m.n_points - 5])


def save(
    run: RunDir,
    model: torch.nn.Module,
    opt: torch.optim.Optimizer,
    gen: torch.Generator,
    progress: Progress,
) -> None:
    """Checkpoint: tensors and numbers only (loadable with ``weights_only=True``)."""
    state = {
        "model": model.state_dict(),
        "opt": opt.state_dict(),
        "generator": gen.get_state(),
        "step": progress.step,
        "seconds": progress.seconds,
    }
    save_checkpoint(run.path / CHECKPOINT, state)


class TrainLog:
    """``train_log.csv``; on resume the rows logged after the checkpoint are dropped (redone)."""

    def __init__(self, path: Path, step: int) -> None:
        self.path = path
        if step == 0 or not path.exists():
            path.write_text(",".join(LOG_FIELDS) + "\n")
            return
        with open(path, newline="") as fh:
            rows = [r for r in csv.DictReader(fh) if r.get("step") and int(r["step"]) <= step]
        with open(path, "w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=LOG_FIELDS, extrasaction="ignore")
            writer.writeheader()
            writer.writerows(rows)

    def write(self, **row: Any) -> None:
        with open(self.path, "a", newline="") as fh:
            csv.DictWriter(fh, fieldnames=LOG_FIELDS).writerow(row)


# ---- the loop -------------------------------------------------------------------------------


def train(
    cfg: TrainConfig,
    out: str | Path,
    *,
    progress: bool = True,
    stop_below: float | None = None,
) -> AlignmentTransformer:
    """Train into `out` (a run directory); resumes. Returns the model in eval mode.

    ``seconds`` in the log and the manifest is training wall time (evaluations included) summed
    over resumed runs. With `stop_below`, training stops at the first evaluation whose error at
    t = n-5 is at or below it (time-to-target); a later call with the same config goes on.
    """
    from tqdm import tqdm

    resolve_device(cfg.device)
    complete = finished_model(cfg, Path(out))
    if complete is not None:
        return complete
    run = open_run(cfg, Path(out))
    model, opt = build(cfg)
    gen = torch.Generator().manual_seed(cfg.seed)
    done = resume(run, model, opt, gen, cfg)
    log = TrainLog(run.path / LOG, done.step)
    bar = tqdm(total=cfg.steps, initial=done.step, disable=not progress, unit="step")
    start, step, err, reached = time.perf_counter(), done.step, None, False
    while step < cfg.steps and not reached:
        lr = lr_at(cfg, step)
        batch = next_batch(cfg, gen, step)
        loss = float(train_step(model, opt, batch, cfg, lr))
        step += 1
        bar.update(1)
        evaluated = step % cfg.eval_every == 0 or step == cfg.steps
        if evaluated:
            err = eval_error(model, cfg)
            reached = stop_below is not None and err <= stop_below
            bar.set_postfix(loss=f"{loss:.3f}", err_t=f"{err:.4f}")
        now = Progress(step, done.seconds + time.perf_counter() - start)
        log.write(
            step=step,
            loss=f"{loss:.5f}",
            lr=f"{lr:.3g}",
            examples=batch.ys.shape[1],
            eval_error_t=f"{err:.4f}" if evaluated and err is not None else "",
            seconds=f"{now.seconds:.2f}",
        )
        if step % cfg.checkpoint_every == 0 or step == cfg.steps or reached:
            save(run, model, opt, gen, now)
        if cfg.snapshot_every and step % cfg.snapshot_every == 0:
            save_checkpoint(run.path / f"model_step{step}.pt", {"model": model.state_dict()})
    bar.close()
    trained_on = str(next(model.parameters()).device) if step > done.step else None
    finish(run, cfg, step, reached, trained_on=trained_on)
    model.eval()
    return model


def finished_model(cfg: TrainConfig, out: Path) -> AlignmentTransformer | None:
    """The model of `out` in eval mode on ``cfg.device`` when its run of `cfg` is complete (the
    same configuration, a manifest that says finished, a checkpoint at ``cfg.steps``), read
    without opening the run, so its manifest is left as the training wrote it (only an older
    ``config.yaml`` is upgraded, as on resuming); None when there is something to do
    (`open_run` then resumes, or refuses another configuration)."""
    saved = out / "config.yaml"
    if not saved.is_file() or "finished" not in read_json_file(out / "manifest.json"):
        return None
    wanted = resolved_config(STUDY, cfg.identity())
    found = saved_config(saved, cfg)
    found.pop("command", None)
    if found != wanted or not (out / CHECKPOINT).is_file():
        return None
    state = load_checkpoint(out / CHECKPOINT, need=("model", "step"))
    if int(state["step"]) < cfg.steps:
        return None
    model, _ = build(cfg)
    model.load_state_dict(state["model"])
    return model.eval()


def finish(run: RunDir, cfg: TrainConfig, step: int, reached: bool, trained_on: str | None) -> None:
    """Record the outcome in the manifest: steps, wall time, last evaluated error, and where the
    steps ran: the devices (`trained_on`, None when this call trained no step) and torch CPU
    thread counts, each the union over resumed runs (wall time depends on them)."""
    rows = read_log(run.path)
    manifest = run.manifest()
    threads = set(manifest.get("torch_threads") or [])
    devices = set(manifest.get("devices") or [])
    if trained_on is not None:
        threads.add(torch.get_num_threads())
        devices.add(trained_on)
    evaluated = [r for r in rows if r["eval_error_t"] != ""]
    summary: dict[str, Any] = {
        "steps_done": step,
        "seconds": float(rows[-1]["seconds"]) if rows else 0.0,
        "eval_error_t": float(evaluated[-1]["eval_error_t"]) if evaluated else None,
        "stopped_at_target": reached,
    }
    if threads:
        summary["torch_threads"] = sorted(threads)
    if devices:
        summary["devices"] = sorted(devices)
    if step >= cfg.steps:
        run.finish(**summary)
    else:
        run.write_json("manifest.json", {**run.manifest(), **summary})


def read_log(model_dir: str | Path) -> list[dict[str, str]]:
    """Rows of ``train_log.csv`` (strings; an empty file gives [])."""
    path = Path(model_dir) / LOG
    if not path.exists():
        return []
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


@dataclass(frozen=True)
class TrainedModel:
    """A model loaded from a run directory and the state it was saved in: `step` training steps
    of the ``cfg.steps`` planned, from `checkpoint` (``checkpoint.pt`` or a snapshot)."""

    model: AlignmentTransformer
    cfg: TrainConfig
    checkpoint: Path
    step: int

    @property
    def finished(self) -> bool:
        return self.step >= self.cfg.steps


def load_trained(out: str | Path, *, device: str = "cpu", step: int | None = None) -> TrainedModel:
    """The trained model of a run directory (or its ``model_step<step>.pt`` snapshot, as the
    official evaluation loads the step-2,500 checkpoint), in eval mode on `device`, with the
    step it was saved at."""
    out = Path(out)
    config_file = out / "config.yaml"
    if not config_file.is_file():
        raise ValueError(f"{out} is not a trained model directory (no config.yaml)")
    data = _read_config(config_file)
    data.pop("study", None)
    data.pop("command", None)
    try:
        cfg = replace(config_from_dict(data), device=device)
    except ValueError as exc:
        raise ValueError(f"{config_file}: {exc}") from None
    resolve_device(device)
    if step is None:
        path = out / CHECKPOINT
        state = load_checkpoint(path, need=("model", "step"))
        saved_at = int(state["step"])
    else:
        path = snapshot(out, step)
        state, saved_at = load_checkpoint(path), step
    model = AlignmentTransformer(cfg.model).to(device)
    model.load_state_dict(state["model"])
    model.eval()
    return TrainedModel(model=model, cfg=cfg, checkpoint=path, step=saved_at)


def load_model(
    out: str | Path, *, device: str = "cpu", step: int | None = None
) -> tuple[AlignmentTransformer, TrainConfig]:
    """`load_trained`'s model and config."""
    trained = load_trained(out, device=device, step=step)
    return trained.model, trained.cfg


def snapshot(out: Path, step: int) -> Path:
    """``model_step<step>.pt`` of `out`; a missing one is a `CheckpointError` that lists the
    snapshots there are."""
    path = out / f"model_step{step}.pt"
    if path.is_file():
        return path
    steps = snapshot_steps(out)
    there = ", ".join(f"model_step{s}.pt" for s in steps) if steps else "none"
    raise CheckpointError(f"{path}: no such snapshot; the snapshots in {out}: {there}")


def snapshot_steps(out: Path) -> list[int]:
    """The steps of the ``model_step<N>.pt`` snapshots in `out`, in order."""
    found = (re.fullmatch(r"model_step(\d+)\.pt", p.name) for p in out.glob("model_step*.pt"))
    return sorted(int(m.group(1)) for m in found if m)
