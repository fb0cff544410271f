"""The paper's Figure 2 panels: which models each needs, training (or reusing) them, curves, plots.

A preset (``theory/presets/<name>.yaml``) holds the training config and, under ``panels:``, the
grids the panels vary (depths, heads, width per head, reward-noise levels, the no-FFN variants,
evaluation size): the paper's grids in ``paper*`` presets, scaled-down ones in ``quick``.
Models live under ``<root>/models/<name>`` (one training run directory each, shared between
panels); each panel is a run directory ``<root>/<panel>`` (study ``theory-panel``) with
``curves.csv``, ``metrics.json`` (errors at t = 2, 5, 10, 15, every predictor's per-sequence
errors at the verdicts' t, and each model's wall time) and the figure.
"""

from __future__ import annotations

import typing
from dataclasses import asdict, dataclass, fields, replace
from importlib.resources import files
from pathlib import Path
from typing import Any

import yaml

from selfcorrect.theory.baselines import GDPredictor, best_in_context, ls_extrapolation
from selfcorrect.theory.evaluate import (
    Predictor,
    Scored,
    curve_rows,
    read_curves,
    score,
    write_curves,
)
from selfcorrect.theory.train import TrainConfig, config_from_dict, override, train

PANELS = {
    "2a": "TF vs GD (and what the task allows)",
    "2b": "reward noise",
    "2c": "depth",
    "2d": "softmax vs linear attention",
    "2e": "number of heads",
    "2f": "with vs without FFN",
}
STUDY = "theory-panel"
REPORT_T = (2, 5, 10, 15)
VERDICT_T = 15  # where `theory summary` decides the claims (the largest t, with fewer examples)
GD_LABEL = "GD (50 Adam steps, lr 0.1)"

# The original code's artifacts (PAPER.md section 3: default model, 256 sequences), drawn beside
# our curves and listed in `theory summary`: t -> error.
PAPER_TF = {2: 0.519, 3: 0.370, 5: 0.336, 10: 0.307, 15: 0.297}
PAPER_GD = {2: 0.385, 3: 0.346, 5: 0.328, 10: 0.306, 15: 0.298}
PAPER_REFERENCES: dict[str, list[tuple[str, dict[int, float]]]] = {
    "2a": [("paper TF (original artifacts)", PAPER_TF), ("paper GD", PAPER_GD)],
    "2b": [("paper TF, p = 0.5", {15: 0.624}), ("paper GD, p = 0.5", {15: 0.467})],
}


@dataclass(frozen=True)
class PanelGrid:
    """What the panels vary. ``no_ffn_keep_ln2``: the no-FFN models of 2f, by whether they keep
    the block's second layer norm (the official no-FFN block does)."""

    depths: tuple[int, ...] = (1, 2, 3, 4)
    heads: tuple[int, ...] = (1, 2, 3, 4)
    head_dim: int = 32
    noise: tuple[float, ...] = (0.0, 0.25, 0.5, 0.75, 1.0)
    no_ffn_keep_ln2: tuple[bool, ...] = (False,)
    n_eval: int = 256

    def __post_init__(self) -> None:
        if not self.depths or min(self.depths) < 1:
            raise ValueError(
                f"panels.depths must be a non-empty list of ints >= 1, got {self.depths}"
            )
        if not self.heads or min(self.heads) < 1:
            raise ValueError(
                f"panels.heads must be a non-empty list of ints >= 1, got {self.heads}"
            )
        if self.head_dim < 1:
            raise ValueError(f"panels.head_dim must be >= 1, got {self.head_dim}")
        if not self.noise or not all(0 <= p <= 1 for p in self.noise):
            raise ValueError(f"panels.noise must be levels in [0, 1], got {self.noise}")
        if not self.no_ffn_keep_ln2:
            raise ValueError("panels.no_ffn_keep_ln2 must list at least one of false, true")
        if self.n_eval < 2:
            raise ValueError(f"panels.n_eval must be >= 2, got {self.n_eval}")


def grid_from_dict(data: dict[str, Any] | None) -> PanelGrid:
    data = dict(data or {})
    known = {f.name for f in fields(PanelGrid)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"unknown panels key(s): {', '.join(unknown)}")
    hints = typing.get_type_hints(PanelGrid)
    out: dict[str, Any] = {}
    for key, value in data.items():
        want = hints[key]
        item = typing.get_args(want)[0] if typing.get_origin(want) is tuple else want
        values = value if isinstance(value, list) else [value]
        ok = all(
            isinstance(v, item)
            and not (item is not bool and isinstance(v, bool))
            or (item is float and isinstance(v, int) and not isinstance(v, bool))
            for v in values
        )
        if not ok or (typing.get_origin(want) is tuple) != isinstance(value, list):
            raise ValueError(f"panels.{key} has the wrong type, got {value!r}")
        out[key] = tuple(item(v) for v in values) if isinstance(value, list) else value
    return PanelGrid(**out)


def preset_names() -> list[str]:
    return sorted(
        p.name[:-5]
        for p in files("selfcorrect.theory").joinpath("presets").iterdir()
        if p.name.endswith(".yaml")
    )


def _preset_data(name: str) -> dict[str, Any]:
    path = files("selfcorrect.theory").joinpath("presets", f"{name}.yaml")
    if not path.is_file():
        raise ValueError(f"unknown preset {name!r}; known: {', '.join(preset_names())}")
    return dict(yaml.safe_load(path.read_text()) or {})


def load_preset(name: str, sets: list[str] | None = None) -> TrainConfig:
    """A preset's training config with ``--set`` overrides applied (validated)."""
    data = _preset_data(name)
    data.pop("panels", None)
    return override(config_from_dict(data), sets or [])


def load_grid(name: str) -> PanelGrid:
    """A preset's panel grids (``panels:``; defaults where the preset has none)."""
    return grid_from_dict(_preset_data(name).get("panels"))


# The model fields each panel varies: its variants set them explicitly, so a `--set` on one
# would be overridden, or turn a comparison into a model against itself; it is refused.
PANEL_FIELDS: dict[str, tuple[str, ...]] = {
    "2a": (),
    "2b": (),
    "2c": ("n_layer",),
    "2d": ("attention",),
    "2e": ("n_head", "n_embd"),
    "2f": ("ffn", "keep_ln2"),
}
GRID_OF = {"n_layer": "panels.depths", "n_head": "panels.heads", "n_embd": "panels.head_dim"}


def check_sets(panel: str, sets: list[str] | None) -> None:
    """Refuse a ``--set`` on a model field the panel varies (one line naming panel and field)."""
    for item in sets or []:
        key = item.partition("=")[0].strip()
        name = key.removeprefix("model.")
        if key.startswith("model.") and name in PANEL_FIELDS.get(panel, ()):
            source = f"the preset's {GRID_OF[name]}" if name in GRID_OF else "the panel itself"
            raise ValueError(
                f"--set {key}: panel {panel} varies model.{name} itself (set by {source}); "
                "drop this --set"
            )


def variants(panel: str, base: TrainConfig, grid: PanelGrid) -> list[tuple[str, TrainConfig]]:
    """(label, config) of the models a panel needs; each sets the fields the panel varies
    (`PANEL_FIELDS`) itself, whatever the base model has."""
    m = base.model

    def with_model(**kw: Any) -> TrainConfig:
        return replace(base, model=replace(m, **kw))

    if panel in ("2a", "2b"):
        return [(f"TF ({m.n_layer}L/{m.n_head}H/{m.n_embd})", base)]
    if panel == "2c":
        return [(f"{L} layers", with_model(n_layer=L)) for L in grid.depths]
    if panel == "2d":
        return [
            ("softmax attention", with_model(attention="softmax")),
            ("linear attention", with_model(attention="linear")),
        ]
    if panel == "2e":
        return [
            (
                f"{h} head{'s' if h > 1 else ''} ({grid.head_dim * h} wide)",
                with_model(n_head=h, n_embd=grid.head_dim * h),
            )
            for h in grid.heads
        ]
    if panel == "2f":
        return [("with FFN", with_model(ffn=True, keep_ln2=False))] + [
            (
                "without FFN, ln_2 kept (official block)" if keep else "without FFN",
                with_model(ffn=False, keep_ln2=keep),
            )
            for keep in grid.no_ffn_keep_ln2
        ]
    raise ValueError(f"unknown panel {panel!r}; use one of {', '.join(PANELS)}")


def model_dir(root: Path, cfg: TrainConfig) -> Path:
    """``<root>/models/<name>``: the name spells out what differs between panel models and
    recipes (options at their defaults add nothing, so names stay stable as options are added)."""
    m = cfg.model
    parts = [
        f"L{m.n_layer}-H{m.n_head}-E{m.n_embd}-{m.attention}",
        "" if m.ffn else ("-noffn-ln2" if m.keep_ln2 else "-noffn"),
        "-gpt2init" if m.init == "gpt2" else "",
        "-tanhgelu" if m.gelu == "tanh" else "",
        f"-{cfg.recipe}-s{cfg.steps}-b{cfg.batch_size}-lr{cfg.lr:g}-seed{cfg.seed}",
        f"-cur{cfg.curriculum_start}x{cfg.curriculum_steps}" if cfg.curriculum_start else "",
        "-bf16" if cfg.bf16 else "",
        f"-noise{cfg.train_noise:g}" if cfg.train_noise else "",
    ]
    return root / "models" / "".join(parts)


def trained(root: Path, cfg: TrainConfig, progress: bool) -> tuple[Predictor, dict[str, Any]]:
    """Train into a directory named after the config, or reuse what is there (resumes).
    Returns the model and its training summary (steps, wall time, the devices and thread
    counts the steps ran with)."""
    from selfcorrect.runs import RunDir

    out = model_dir(root, cfg)
    model = train(cfg, out, progress=progress)  # a complete run's model, read once
    manifest = RunDir(out, {}).manifest()
    summary = {
        k: manifest.get(k)
        for k in ("steps_done", "seconds", "devices", "eval_error_t", "torch_threads")
    }
    return model, {"dir": out.name, **summary}


def run_panel(
    panel: str,
    preset: str,
    out: str | Path,
    *,
    sets: list[str] | None = None,
    progress: bool = True,
    device: str | None = None,
) -> Path:
    """Train what the panel needs, evaluate, write ``<out>/<panel>/``: curves.csv, metrics.json,
    figure_<panel>.png/.svg and report.html."""
    from selfcorrect.runs import RunDir

    if panel not in PANELS:
        raise ValueError(f"unknown panel {panel!r}; use one of {', '.join(PANELS)}")
    check_sets(panel, sets)
    root = Path(out)
    base = load_preset(preset, sets)
    if device is not None:
        base = replace(base, device=device)
    grid = load_grid(preset)
    models = variants(panel, base, grid)
    run = RunDir.open(
        root / panel,
        study=STUDY,
        config={
            "panel": panel,
            "preset": preset,
            "sets": list(sets or []),
            "grid": asdict(grid),
            "models": {label: model_dir(root, cfg).name for label, cfg in models},
        },
        model=f"{len(models)} model(s)",
        seed=base.seed,
    )
    predictors: dict[str, Predictor] = {}
    training: dict[str, dict[str, Any]] = {}
    for label, cfg in models:
        predictors[label], training[label] = trained(root, cfg, progress)
    noise = grid.noise if panel == "2b" else (0.0,)
    if panel in ("2a", "2b"):
        predictors[GD_LABEL] = GDPredictor("adam", steps=50, lr=0.1)
    if panel == "2a":
        predictors["best in-context response"] = best_in_context
        predictors["least squares y on r, at r = 1"] = ls_extrapolation
    m = base.model
    scored = list(
        score(
            predictors,
            noise_levels=noise,
            n_eval=grid.n_eval,
            n_dims=m.n_dims,
            n_points=m.n_points,
            device=base.device,
        )
    )
    rows = curve_rows(scored)
    write_curves(rows, run.path / "curves.csv")
    run.write_json("metrics.json", panel_metrics(rows, training, scored))
    from selfcorrect.report.plots import theory_panel

    theory_panel(
        read_curves(run.path / "curves.csv"),
        panel,
        PANELS[panel],
        run.path,
        references=PAPER_REFERENCES.get(panel, []),
    )
    from selfcorrect.report.html import render_report

    render_report([run.path], run.path / "report.html", title=f"Figure {panel}: {PANELS[panel]}")
    run.finish(models=training)
    return run.path


def panel_metrics(
    rows: list[dict[str, Any]],
    training: dict[str, dict[str, Any]],
    scored: list[Scored] | None = None,
) -> dict[str, Any]:
    """Error and standard error at t = 2, 5, 10, 15 per predictor and noise; training summaries;
    with `scored`, each predictor's per-sequence errors at the verdicts' t (`per_sequence`), so
    that two predictors evaluated on the same sequences are compared pair by pair."""
    errors: dict[str, dict[str, dict[str, list[float]]]] = {}
    for r in rows:
        if int(r["t"]) in REPORT_T:
            by_noise = errors.setdefault(str(r["predictor"]), {}).setdefault(f"{r['noise']:g}", {})
            by_noise[str(r["t"])] = [round(float(r["error"]), 4), round(float(r["stderr"]), 4)]
    metrics: dict[str, Any] = {"t": list(REPORT_T), "error_stderr": errors, "training": training}
    if scored:
        metrics["per_sequence"] = per_sequence_errors(scored)
    return metrics


def per_sequence_errors(scored: list[Scored]) -> dict[str, Any]:
    """``{"t": t, "errors": {predictor: {noise: [error of each sequence]}}}`` at t = 15 (or the
    largest t evaluated), rounded to 6 decimals (far below any standard error here)."""
    t = min(VERDICT_T, scored[0].errors.shape[1] - 1)
    errors: dict[str, dict[str, list[float]]] = {}
    for item in scored:
        at_t = [round(e, 6) for e in item.errors[:, t].tolist()]
        errors.setdefault(item.predictor, {})[f"{item.noise:g}"] = at_t
    return {"t": t, "errors": errors}


def all_models(preset: str, sets: list[str] | None = None) -> list[tuple[str, TrainConfig]]:
    """Every distinct model the six panels need (panel/label, config), the base model first and
    the cheapest next, so a partial run finishes as many models as it can."""
    for panel in PANELS:
        check_sets(panel, sets)
    base, grid = load_preset(preset, sets), load_grid(preset)
    seen: dict[str, tuple[str, TrainConfig]] = {}
    for panel in PANELS:
        for label, cfg in variants(panel, base, grid):
            seen.setdefault(model_dir(Path("."), cfg).name, (f"{panel}: {label}", cfg))

    def cost(cfg: TrainConfig) -> float:
        m = cfg.model
        return m.n_layer * m.n_embd**2 * (1.0 if m.ffn else 0.4)

    models = list(seen.values())
    return models[:1] + sorted(models[1:], key=lambda item: cost(item[1]))


def _train_in_process(cfg: TrainConfig, out: Path, threads: int) -> tuple[str, float]:
    import torch

    torch.set_num_threads(threads)
    train(cfg, out, progress=False)
    from selfcorrect.runs import RunDir

    return out.name, float(RunDir(out, {}).manifest().get("seconds") or 0.0)


def train_all(
    preset: str,
    out: str | Path,
    *,
    sets: list[str] | None = None,
    jobs: int = 1,
    threads: int = 1,
    device: str | None = None,
    on_done: typing.Callable[[str, float], None] | None = None,
) -> list[Path]:
    """Train (or resume, or reuse) every model of every panel, `jobs` processes at a time, each
    with `threads` torch threads. A model that fails is reported and the others go on; a second
    call resumes. Returns the model directories that are complete."""
    from concurrent.futures import ProcessPoolExecutor, as_completed
    from multiprocessing import get_context

    root = Path(out)
    models = all_models(preset, sets)
    if device is not None:
        models = [(label, replace(cfg, device=device)) for label, cfg in models]
    done: list[Path] = []
    failures: list[str] = []
    with ProcessPoolExecutor(max_workers=jobs, mp_context=get_context("spawn")) as pool:
        futures = {
            pool.submit(_train_in_process, cfg, model_dir(root, cfg), threads): (label, cfg)
            for label, cfg in models
        }
        for future in as_completed(futures):
            label, cfg = futures[future]
            try:
                name, seconds = future.result()
            except Exception as exc:  # one broken model must not stop the others
                failures.append(f"{label}: {exc}")
                continue
            done.append(model_dir(root, cfg))
            if on_done is not None:
                on_done(f"{label} ({name})", seconds)
    if failures:
        raise RuntimeError(f"{len(failures)} model(s) failed: " + "; ".join(failures))
    return done
