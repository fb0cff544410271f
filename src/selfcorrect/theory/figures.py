"""The paper's Figure 2 panels: which models each needs, training (or reusing) them, curves, plots.

Panel variants follow the paper at the ``paper*`` presets and are scaled to the base model at
``quick`` (depths 1-4 instead of 5-20, 32 dims per head as in the paper).
"""

from __future__ import annotations

from dataclasses import replace
from importlib.resources import files
from pathlib import Path
from typing import Any

import yaml

from selfcorrect.theory.baselines import GDPredictor, best_in_context, ls_extrapolation
from selfcorrect.theory.evaluate import Predictor, evaluate, read_curves, write_curves
from selfcorrect.theory.train import TrainConfig, config_from_dict, load_model, override, train

PANELS = {
    "2a": "TF vs GD (and what the task allows)",
    "2b": "reward noise",
    "2c": "depth",
    "2d": "softmax vs linear attention",
    "2e": "number of heads",
    "2f": "with vs without FFN",
}
NOISE_LEVELS = (0.0, 0.25, 0.5, 0.75, 1.0)


def preset_names() -> list[str]:
    return sorted(
        p.name[:-5]
        for p in files("selfcorrect.theory").joinpath("presets").iterdir()
        if p.name.endswith(".yaml")
    )


def load_preset(name: str, sets: list[str] | None = None) -> TrainConfig:
    path = files("selfcorrect.theory").joinpath("presets", f"{name}.yaml")
    if not path.is_file():
        raise ValueError(f"unknown preset {name!r}; known: {', '.join(preset_names())}")
    return override(config_from_dict(yaml.safe_load(path.read_text())), sets or [])


def variants(panel: str, base: TrainConfig, preset: str) -> list[tuple[str, TrainConfig]]:
    """(label, config) of the models a panel needs."""
    m = base.model
    paper = preset.startswith("paper")

    def with_model(**kw: Any) -> TrainConfig:
        return replace(base, model=replace(m, **kw))

    if panel in ("2a", "2b"):
        return [(f"TF ({m.n_layer}L/{m.n_head}H/{m.n_embd})", base)]
    if panel == "2c":
        depths = (5, 10, 15, 20) if paper else (1, 2, 3, 4)
        return [(f"{L} layers", with_model(n_layer=L)) for L in depths]
    if panel == "2d":
        return [("softmax attention", base), ("linear attention", with_model(attention="linear"))]
    if panel == "2e":
        heads = (1, 3, 4, 6) if paper else (1, 2, 3, 4)
        return [
            (f"{h} head{'s' if h > 1 else ''} ({32 * h} wide)", with_model(n_head=h, n_embd=32 * h))
            for h in heads
        ]
    if panel == "2f":
        return [("with FFN", base), ("without FFN", with_model(ffn=False))]
    raise ValueError(f"unknown panel {panel!r}; use one of {', '.join(PANELS)}")


def model_dir(root: Path, cfg: TrainConfig) -> Path:
    m = cfg.model
    name = (
        f"L{m.n_layer}-H{m.n_head}-E{m.n_embd}-{m.attention}{'' if m.ffn else '-noffn'}"
        f"-{cfg.recipe}-s{cfg.steps}-b{cfg.batch_size}-lr{cfg.lr:g}-seed{cfg.seed}"
        f"{'-bf16' if cfg.bf16 else ''}{f'-noise{cfg.train_noise:g}' if cfg.train_noise else ''}"
    )
    return root / "models" / name


def trained(root: Path, cfg: TrainConfig, progress: bool) -> Predictor:
    """Train into a directory named after the config, or reuse what is there (resumes)."""
    out = model_dir(root, cfg)
    train(cfg, out, progress=progress)  # returns at once when already complete
    model, _ = load_model(out)
    return model


def run_panel(
    panel: str,
    preset: str,
    out: str | Path,
    *,
    sets: list[str] | None = None,
    progress: bool = True,
    n_eval: int = 256,
) -> Path:
    """Train what the panel needs, evaluate, write ``<out>/<panel>/curves.csv`` and the PNG/SVG."""
    root = Path(out)
    base = load_preset(preset, sets)
    predictors: dict[str, Predictor] = {}
    for label, cfg in variants(panel, base, preset):
        predictors[label] = trained(root, cfg, progress)
    noise = NOISE_LEVELS if panel == "2b" else (0.0,)
    if panel in ("2a", "2b"):
        predictors["GD (50 Adam steps, lr 0.1)"] = GDPredictor("adam", steps=50, lr=0.1)
    if panel == "2a":
        predictors["best in-context response"] = best_in_context
        predictors["least squares y on r, at r = 1"] = ls_extrapolation
    m = base.model
    rows = evaluate(
        predictors, noise_levels=noise, n_eval=n_eval, n_dims=m.n_dims, n_points=m.n_points
    )
    panel_dir = root / panel
    write_curves(rows, panel_dir / "curves.csv")
    from selfcorrect.report.plots import theory_panel

    theory_panel(read_curves(panel_dir / "curves.csv"), panel, PANELS[panel], panel_dir)
    from selfcorrect.report.html import render_report

    render_report([panel_dir], panel_dir / "report.html", title=f"Figure {panel}: {PANELS[panel]}")
    return panel_dir
