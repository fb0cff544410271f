"""Training configuration of the theory lab: one frozen dataclass, validated on construction.

Every numeric option has a range, and every value has a type, so a bad preset or ``--set`` fails
with one line naming the key (``eval_every must be >= 1, got 0``) before anything is written.
"""

from __future__ import annotations

import math
import typing
from dataclasses import MISSING, asdict, dataclass, field, fields
from typing import Any

import yaml

from selfcorrect.theory.model import ModelConfig

RECIPES = ("ours", "paper")
SCORE_NAMES = ("cosine", "inner", "neg_sq_dist")


@dataclass(frozen=True)
class TrainConfig:
    """What to train and how. ``recipe="ours"``: AdamW, linear warm-up then cosine decay to
    ``min_lr_ratio * lr``, gradient clipping. ``recipe="paper"``: Adam at a constant lr, no
    warm-up, no clipping (the original), so it refuses ``OURS_ONLY`` options set away from their
    defaults (they would be saved, and name the run, without doing anything). ``curriculum_start`` > 0 starts training on sequences
    of that many examples and grows them linearly to ``model.n_points`` by step
    ``curriculum_steps`` (Garg et al.'s curriculum over in-context examples)."""

    model: ModelConfig = field(default_factory=ModelConfig)
    steps: int = 1200
    batch_size: int = 256
    lr: float = 1e-3
    weight_decay: float = 0.0
    warmup: int = 100
    min_lr_ratio: float = 0.1
    grad_clip: float = 1.0
    recipe: str = "ours"
    score: str = "cosine"
    train_noise: float = 0.0
    seed: int = 0
    eval_every: int = 100
    eval_size: int = 256
    checkpoint_every: int = 100
    snapshot_every: int = 0  # also keep model_step<N>.pt every N steps (0: never)
    curriculum_start: int = 0  # examples per sequence at step 0 (0: no curriculum)
    curriculum_steps: int = 0  # step at which sequences reach model.n_points
    bf16: bool = False  # bfloat16 autocast (on the configured device's type)
    device: str = "cpu"  # where to train; not part of a run's identity (resume on another)

    def __post_init__(self) -> None:
        def need(ok: bool, key: str, rule: str) -> None:
            if not ok:
                raise ValueError(f"{key} must be {rule}, got {getattr(self, key)!r}")

        for key in ("lr", "weight_decay", "min_lr_ratio", "grad_clip", "train_noise"):
            need(math.isfinite(getattr(self, key)), key, "a finite number")
        need(self.steps >= 1, "steps", ">= 1")
        need(self.batch_size >= 1, "batch_size", ">= 1")
        need(self.lr > 0, "lr", "> 0")
        need(self.weight_decay >= 0, "weight_decay", ">= 0")
        need(self.warmup >= 0, "warmup", ">= 0")
        need(0 <= self.min_lr_ratio <= 1, "min_lr_ratio", "in [0, 1]")
        need(self.grad_clip >= 0, "grad_clip", ">= 0 (0: no clipping)")
        need(self.recipe in RECIPES, "recipe", " or ".join(RECIPES))
        need(self.score in SCORE_NAMES, "score", ", ".join(SCORE_NAMES))
        need(0 <= self.train_noise <= 1, "train_noise", "in [0, 1]")
        need(self.seed >= 0, "seed", ">= 0")
        from selfcorrect.theory.baselines import TUNE_SEED  # imports torch: only when validating
        from selfcorrect.theory.evaluate import EVAL_SEED

        reserved = (EVAL_SEED, TUNE_SEED)  # a training stream from one would be those sequences
        need(self.seed not in reserved, "seed", f"not {EVAL_SEED} or {TUNE_SEED} (reserved)")
        need(self.eval_every >= 1, "eval_every", ">= 1")
        need(self.eval_size >= 2, "eval_size", ">= 2")
        need(self.checkpoint_every >= 1, "checkpoint_every", ">= 1")
        need(self.snapshot_every >= 0, "snapshot_every", ">= 0 (0: no snapshots)")
        n = self.model.n_points
        need(
            self.curriculum_start == 0 or 3 <= self.curriculum_start <= n,
            "curriculum_start",
            f"0 (off) or in [3, model.n_points = {n}]",
        )
        need(
            self.curriculum_start == 0 or self.curriculum_steps >= 1,
            "curriculum_steps",
            ">= 1 when curriculum_start is set",
        )
        need(self.curriculum_steps >= 0, "curriculum_steps", ">= 0")
        for key in OURS_ONLY:
            default = _default(key)
            need(
                self.recipe == "ours" or getattr(self, key) == default,
                key,
                f"left at its default {default!r} with recipe=paper (only recipe=ours uses it; "
                "recipe=paper is Adam at a constant lr: no weight decay, schedule or clipping)",
            )
        _check_device(self.device)

    def identity(self) -> dict[str, Any]:
        """The resolved config that names a training run (the device is left out)."""
        data = asdict(self)
        data.pop("device")
        return data


OURS_ONLY = ("weight_decay", "warmup", "min_lr_ratio", "grad_clip")  # AdamW, schedule, clipping


def _default(key: str) -> Any:
    """The declared default of a `TrainConfig` field."""
    return next(f.default for f in fields(TrainConfig) if f.name == key)


def _check_device(device: str) -> None:
    import torch

    try:
        torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(
            f"device must be a torch device such as cpu or cuda, got {device!r}"
        ) from exc


def examples_at(cfg: TrainConfig, step: int) -> int:
    """Examples per training sequence at `step` (the curriculum; model.n_points without one)."""
    n = cfg.model.n_points
    if cfg.curriculum_start == 0 or step >= cfg.curriculum_steps:
        return n
    return cfg.curriculum_start + (n - cfg.curriculum_start) * step // cfg.curriculum_steps


def lr_at(cfg: TrainConfig, step: int) -> float:
    """Learning rate at `step`: constant for the paper recipe, warm-up + cosine for ours."""
    if cfg.recipe == "paper":
        return cfg.lr
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    progress = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
    return cfg.lr * (
        cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))
    )


def _coerced(want: type, value: Any) -> Any:
    """`value` as a `want` field holds it, where that is unambiguous: a numeric string for a
    float (YAML reads ``1e-3`` as a string), an integer-valued number for an int (``1e3`` ->
    1000); anything else unchanged, for `_check_types` to judge."""
    if isinstance(value, bool) or want not in (int, float):
        return value
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            return value
    if want is int and isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _check_types(cls: type, data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """`data` with each value coerced to its field's type (`_coerced`), else one line naming the
    key; an int is accepted for a float."""
    hints = typing.get_type_hints(cls)
    checked = {}
    for key, raw in data.items():
        want = hints[key]
        value = _coerced(want, raw)
        name = f"{prefix}{key}"
        if want is bool:
            ok = isinstance(value, bool)
        elif want is int:
            ok = isinstance(value, int) and not isinstance(value, bool)
        elif want is float:
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        elif want is str:
            ok = isinstance(value, str)
        else:
            ok = True
        if not ok:
            whole = " (not a whole number)" if want is int and isinstance(value, float) else ""
            raise ValueError(f"{name} must be of type {want.__name__}, got {raw!r}{whole}")
        checked[key] = value
    return checked


def config_from_dict(data: dict[str, Any]) -> TrainConfig:
    """Build a config from a preset dict; unknown keys and wrongly typed values are errors."""
    data = dict(data)
    model_keys = {f.name for f in fields(ModelConfig)}
    train_keys = {f.name for f in fields(TrainConfig)} - {"model"}
    model_data = data.pop("model", {}) or {}
    if not isinstance(model_data, dict):
        raise ValueError(f"model must be a mapping of model options, got {model_data!r}")
    model_data = dict(model_data)
    unknown = sorted(set(data) - train_keys) + sorted(
        f"model.{k}" for k in set(model_data) - model_keys
    )
    if unknown:
        raise ValueError(f"unknown config key(s): {', '.join(unknown)}")
    model_data = _check_types(ModelConfig, model_data, "model.")
    data = _check_types(TrainConfig, data)
    floats = {
        f.name for f in fields(TrainConfig) if typing.get_type_hints(TrainConfig)[f.name] is float
    }
    data = {k: float(v) if k in floats else v for k, v in data.items()}
    return TrainConfig(model=ModelConfig(**model_data), **data)


def override(cfg: TrainConfig, assignments: list[str]) -> TrainConfig:
    """Apply ``key=value`` (``model.n_layer=4``) overrides, values parsed as YAML scalars."""
    data = asdict(cfg)
    for item in assignments:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--set {item!r} must look like key=value")
        try:
            value = yaml.safe_load(raw)
        except yaml.YAMLError as exc:
            raise ValueError(f"--set {item!r}: the value is not a YAML scalar") from exc
        target = data
        parts = key.strip().split(".")
        for part in parts[:-1]:
            if not isinstance(target.get(part), dict):
                raise ValueError(f"unknown config key {key!r}")
            target = target[part]
        if parts[-1] not in target or isinstance(target[parts[-1]], dict):
            raise ValueError(f"unknown config key {key!r}")
        target[parts[-1]] = value
    return config_from_dict(data)


def upgrade_saved(saved: dict[str, Any], current: dict[str, Any]) -> dict[str, Any]:
    """A config saved before a field existed lacks it; the field's default reproduces the old
    behaviour, so a missing key whose current value is the default is filled in (and nothing
    else): old runs stay resumable and reusable when options are added."""
    upgraded = dict(saved)
    for cls, sub in ((TrainConfig, None), (ModelConfig, "model")):
        have = upgraded if sub is None else dict(upgraded.get(sub) or {})
        want = current if sub is None else current.get(sub) or {}
        for f in fields(cls):
            if f.name in have or f.name not in want or f.name == "model":
                continue
            default = f.default if f.default is not MISSING else None
            if want[f.name] == default:
                have[f.name] = default
        if sub is not None:
            upgraded[sub] = have
    return upgraded
