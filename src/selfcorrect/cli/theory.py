"""``selfcorrect theory``: train, evaluate, draw Figure 2 panels, check the explicit construction."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

if TYPE_CHECKING:
    from selfcorrect.theory.baselines import GDPredictor
    from selfcorrect.theory.config import TrainConfig

app = typer.Typer(
    help="The synthetic in-context alignment lab (the paper's Figure 2) and the GD construction.",
    no_args_is_help=True,
)


def _threads(threads: int | None) -> None:
    """Limit torch's CPU threads (leave cores to others on a shared machine)."""
    if threads is not None:
        import torch

        torch.set_num_threads(threads)


THREADS = typer.Option(None, "--threads", min=1, help="CPU threads for torch (default: all).")
DEVICE = typer.Option(None, "--device", help="cpu or cuda (overrides the preset's device).")


@app.command("train")
def train_cmd(
    preset: str = typer.Option("quick", "--preset", "-p", help="quick, paper or paper-recipe."),
    set_: list[str] = typer.Option(
        None, "--set", help="Override, e.g. --set steps=600 --set model.n_layer=2."
    ),
    out: Path = typer.Option(..., "--out", "-o", help="Model directory (rerun to resume)."),
    stop_below: float = typer.Option(
        None,
        "--stop-below",
        help="Stop at the first evaluation whose error at t = 15 is at or below this "
        "(time-to-target; the log's seconds column says how long it took).",
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q"),
    device: str = DEVICE,
    threads: int = THREADS,
) -> None:
    """Train one alignment transformer (checkpoint, resume, train_log.csv)."""
    from dataclasses import replace

    from selfcorrect.theory.figures import load_preset
    from selfcorrect.theory.train import eval_error, train

    cfg = load_preset(preset, set_)
    if device is not None:
        cfg = replace(cfg, device=device)
    if stop_below is not None and not 0 <= stop_below <= 2:
        raise ValueError(f"--stop-below must be in [0, 2] (an error 1 - cos), got {stop_below:g}")
    _threads(threads)
    model = train(cfg, out, progress=not quiet, stop_below=stop_below)
    typer.echo(
        f"error at t = {cfg.model.n_points - 5}: {eval_error(model, cfg):.4f}; model in {out}"
    )


@app.command("eval")
def eval_cmd(
    model_dir: Path = typer.Argument(..., help="A trained model directory."),
    noise: str = typer.Option("0", "--noise", help="Reward noise levels, comma separated."),
    gd: bool = typer.Option(True, "--gd/--no-gd", help="Also evaluate the GD baselines."),
    gd_methods: str = typer.Option(
        "adam",
        "--gd-methods",
        help="GD baselines, comma separated: adam (the original code's 50 Adam steps at lr "
        "0.1), gd, pgd (plain and preconditioned GD, 50 steps, the step size tuned on "
        "sequences of their own).",
    ),
    n_eval: int = typer.Option(256, "--n-eval", min=2, help="Evaluation sequences."),
    step: int = typer.Option(
        None,
        "--step",
        min=1,
        help="Evaluate the model_step<N>.pt snapshot (the official evaluation loads step 2500).",
    ),
    device: str = typer.Option("cpu", "--device", help="cpu or cuda."),
    threads: int = THREADS,
) -> None:
    """Write <model_dir>/curves.csv (or curves_step<N>.csv) (predictor, noise, t, error, stderr)
    and beside it curves.json (or curves_step<N>.json): the model state it scored (checkpoint,
    step, steps planned) and the evaluation's settings."""
    from selfcorrect.runfiles import write_text_atomic
    from selfcorrect.theory.evaluate import Predictor, evaluate, write_curves
    from selfcorrect.theory.train import load_trained

    levels = _noise_levels(noise)
    gd_method_names(gd_methods)  # a typo fails before the model loads
    _threads(threads)
    trained = load_trained(model_dir, device=device, step=step)
    cfg = trained.cfg
    scored = {
        "checkpoint": trained.checkpoint.name,
        "step": trained.step,
        "steps_planned": cfg.steps,
        "finished": trained.finished,
        "n_eval": n_eval,
        "noise": levels,
        "gd": gd,
        "device": device,
    }
    typer.echo(
        f"scoring {trained.checkpoint.name}: step {trained.step} of {cfg.steps} planned; "
        f"{n_eval} sequences, noise {', '.join(f'{p:g}' for p in levels)}"
    )
    if step is None and not trained.finished:
        typer.echo(
            f"warning: {model_dir} has not finished training ({trained.step} of {cfg.steps} "
            "steps); these curves score that unfinished state",
            err=True,
        )
    predictors: dict[str, Predictor] = {"TF": trained.model}
    if gd:
        for baseline in gd_baselines(gd_methods, cfg, device, scored):
            predictors[baseline.label] = baseline
    rows = evaluate(
        predictors,
        noise_levels=levels,
        n_eval=n_eval,
        n_dims=cfg.model.n_dims,
        n_points=cfg.model.n_points,
        device=device,
    )
    stem = "curves" if step is None else f"curves_step{step}"
    write_curves(rows, model_dir / f"{stem}.csv")
    write_text_atomic(model_dir / f"{stem}.json", json.dumps(scored, indent=2) + "\n")
    for r in rows:
        if r["t"] in (2, 5, 10, 15):
            typer.echo(
                f"{r['predictor']:28s} p={r['noise']:<5g} t={r['t']:<3d} error {r['error']:.3f} ± {r['stderr']:.3f}"
            )
    typer.echo(f"wrote {model_dir / stem}.csv and {stem}.json")


def gd_method_names(methods: str) -> list[str]:
    """The distinct GD baselines of a ``--gd-methods`` value, in order; ValueError for others."""
    names = list(dict.fromkeys(m.strip() for m in methods.split(",") if m.strip()))
    unknown = sorted(set(names) - {"adam", "gd", "pgd"})
    if unknown or not names:
        raise ValueError(f"--gd-methods takes adam, gd and pgd, not {', '.join(unknown) or '-'}")
    return names


def gd_baselines(
    methods: str, cfg: TrainConfig, device: str, scored: dict[str, Any]
) -> list[GDPredictor]:
    """The GD baselines `methods` names (adam, gd, pgd), gd and pgd at the step size tuned
    for them; `scored` gets each one's step size and the tuning errors."""
    from selfcorrect.theory.baselines import STEP_SIZES, GDPredictor, tune_step_size

    out = []
    for name in gd_method_names(methods):
        if name == "adam":
            out.append(GDPredictor("adam"))
            continue
        lr, errors = tune_step_size(
            name, n_dims=cfg.model.n_dims, n_points=cfg.model.n_points, device=device
        )
        if lr in (STEP_SIZES[0], STEP_SIZES[-1]):
            typer.echo(
                f"warning: {name}'s tuned step size {lr:.3g} is at the grid's edge", err=True
            )
        scored.setdefault("tuning", {})[name] = {f"{k:.4g}": v for k, v in errors.items()}
        out.append(GDPredictor(name, lr=lr))
    scored["baselines"] = {b.label: {"method": b.method, "steps": b.steps, "lr": b.lr} for b in out}
    return out


@app.command("figure")
def figure_cmd(
    panel: str = typer.Argument(..., help="2a, 2b, 2c, 2d, 2e or 2f."),
    preset: str = typer.Option("quick", "--preset", "-p"),
    set_: list[str] = typer.Option(
        None, "--set", help="Overrides for every model of the panel (not the fields it varies)."
    ),
    out: Path = typer.Option(
        Path("runs/theory"), "--out", "-o", help="Root: models/ are shared by panels."
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q"),
    device: str = DEVICE,
    threads: int = THREADS,
) -> None:
    """Train (or reuse) the models a panel needs and draw it."""
    from selfcorrect.theory.evaluate import read_curves
    from selfcorrect.theory.figures import run_panel

    _threads(threads)
    panel_dir = run_panel(panel, preset, out / preset, sets=set_, progress=not quiet, device=device)
    rows = read_curves(panel_dir / "curves.csv")
    for r in rows:
        if r["t"] == 15 or (r["t"] in (2, 5, 10) and not quiet):
            typer.echo(
                f"{r['predictor']:34s} p={r['noise']:<5g} t={r['t']:<3d} error {r['error']:.3f} ± {r['stderr']:.3f}"
            )
    typer.echo(f"wrote {panel_dir}/curves.csv and figure_{panel}.png/.svg")


@app.command("panels")
def panels_cmd(
    preset: str = typer.Option("paper", "--preset", "-p"),
    set_: list[str] = typer.Option(
        None, "--set", help="Overrides for every model (not the fields a panel varies)."
    ),
    out: Path = typer.Option(
        Path("runs/theory"), "--out", "-o", help="Root: models/ are shared by panels."
    ),
    jobs: int = typer.Option(
        1, "--jobs", "-j", min=1, help="Models trained at once, each in its own process."
    ),
    threads: int = typer.Option(1, "--threads", min=1, help="torch threads per model."),
    device: str = DEVICE,
    quiet: bool = typer.Option(False, "--quiet", "-q"),
) -> None:
    """Train every model of Figure 2 (resumes), then draw 2a-2f and write the summary."""
    from selfcorrect.theory.figures import PANELS, all_models, run_panel, train_all
    from selfcorrect.theory.verdicts import load_panels, table, verdict_lines, verdicts

    root = out / preset
    models = all_models(preset, set_)
    typer.echo(f"{len(models)} models under {root}/models, {jobs} at a time", err=True)
    train_all(
        preset,
        root,
        sets=set_,
        jobs=jobs,
        threads=threads,
        device=device,
        on_done=lambda name, seconds: typer.echo(
            f"trained {name}: {seconds / 60:.1f} min of training", err=True
        ),
    )
    _threads(threads * jobs)
    for panel in PANELS:
        run_panel(panel, preset, root, sets=set_, progress=not quiet, device=device)
    panels = load_panels(root)
    text = table(panels) + "\n\n" + verdict_lines(verdicts(panels)) + "\n"
    (root / "summary.md").write_text(text, encoding="utf-8")
    typer.echo(text, nl=False)
    typer.echo(f"wrote {root}/2a .. 2f and {root}/summary.md", err=True)


@app.command("summary")
def summary_cmd(
    root: Path = typer.Argument(
        ..., help="A preset's panel root, e.g. runs/theory/paper (holds 2a/ .. 2f/)."
    ),
    out: Path = typer.Option(None, "--out", "-o", help="Also write the Markdown to this file."),
) -> None:
    """The paper-scale table and one verdict per claim of the paper, from the panels run so far."""
    from selfcorrect.theory.verdicts import load_panels, table, verdict_lines, verdicts

    if not root.is_dir():
        raise typer.BadParameter(f"{root} is not a directory", param_hint="ROOT")
    panels = load_panels(root)
    if not panels:
        raise typer.BadParameter(
            f"no finished panel under {root} (run `selfcorrect theory figure 2a ...` first)",
            param_hint="ROOT",
        )
    text = table(panels) + "\n\n" + verdict_lines(verdicts(panels)) + "\n"
    typer.echo(text, nl=False)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text, encoding="utf-8")


@app.command("construct")
def construct_cmd(
    d: int = typer.Option(5, "--d", min=1),
    n: int = typer.Option(20, "--n", min=2, help="Responses N (N-1 blocks per GD step)."),
    steps: str = typer.Option("1,3", "--steps", help="GD steps T to check, comma separated."),
    beta: str = typer.Option(
        "10,100,1e3,1e4,1e6,1e9", "--beta", help="Selection sharpness values (default 1e9)."
    ),
    eta: float = typer.Option(0.01, "--eta", min=0.0),
    problems: int = typer.Option(100, "--problems", min=1),
    dtype: str = typer.Option("float64", "--dtype", help="float64 or float32."),
    as_json: bool = typer.Option(False, "--json", help="Print the error table as JSON."),
    out: Path = typer.Option(
        None, "--out", "-o", help="Also write a run directory: construct.json, noise, plots."
    ),
    compare: Path = typer.Option(
        None, "--compare", help="A trained model dir: draw both error curves (needs --out)."
    ),
) -> None:
    """Build the hand-weighted transformer and compare it with explicit GD on the PL loss."""
    import torch

    from selfcorrect.theory.construct_study import error_table, run_construction

    if dtype not in ("float64", "float32"):
        raise ValueError(f"--dtype must be float64 or float32, got {dtype!r}")
    step_list = _positive_list(steps, "--steps", int)
    betas = _positive_list(beta, "--beta", float)
    if compare is not None and out is None:
        raise ValueError("--compare needs --out (where the comparison is drawn)")
    if out is not None:
        table = run_construction(
            out,
            d=d,
            n=n,
            eta=eta,
            steps=step_list,
            betas=betas,
            n_problems=problems,
            dtype=dtype,
            compare=compare,
        )
    else:
        table = error_table(
            d=d,
            n=n,
            eta=eta,
            steps=step_list,
            betas=betas,
            n_problems=problems,
            dtype=getattr(torch, dtype),
        )
    if as_json:
        typer.echo(json.dumps(table, indent=2))
        return
    typer.echo(
        f"d={d} N={n} eta={eta} {problems} problems, {table['dtype']}; smallest reward gap: "
        f"{table['min_reward_gap']:.4f} (gapped), {table['min_reward_gap_iid']:.1e} (i.i.d. U(0,1))"
    )
    typer.echo(f"{'case':22s} {'steps':>5s} {'beta':>8s} {'max |TF - GD|':>14s}")
    labels = {"by_beta": "PL, gapped rewards", "iid": "PL, i.i.d. U(0,1)", "bt": "BT (N=2)"}
    for case, label in labels.items():
        for row in table[case]:
            typer.echo(
                f"{label:22s} {row['steps']:5d} {row['beta']:8g} {row['max_abs_error']:14.3e}"
            )
    typer.echo("\nablations (1 step):")
    for row in table["ablations"]:
        typer.echo(f"  {row['variant']:28s} {row['max_abs_error']:.3e}")
    if out is not None:
        sweep = table["noise_settings"]
        typer.echo(
            f"\nreward noise ({sweep['problems']} problems, {sweep['dtype']}, "
            f"{sweep['steps']} GD step{'s' if sweep['steps'] > 1 else ''}):"
        )
        for row in table["noise"]:
            typer.echo(
                f"  reward noise p={row['noise']:<5g} error vs y* {row['error_vs_y_star']:.3f} "
                f"(mean |TF - GD| {row['mean_abs_diff_to_gd']:.1e})"
            )
        typer.echo(f"wrote {out}/construct.json and plots")


def _positive_list(text: str, option: str, kind: type) -> list:
    """``1,3`` or ``10,1e3``: positive numbers, one line naming a bad one."""
    values = []
    for item in text.split(","):
        if not item.strip():
            continue
        try:
            value = kind(float(item)) if kind is int and float(item).is_integer() else kind(item)
        except ValueError:
            raise ValueError(f"{option}: {item.strip()!r} is not a {kind.__name__}") from None
        if not value > 0:
            raise ValueError(f"{option} values must be > 0, got {item.strip()}")
        values.append(value)
    if not values:
        raise ValueError(f"{option} needs at least one value")
    return values


def _noise_levels(text: str) -> list[float]:
    """``--noise 0,0.5,1``: levels in [0, 1], one line naming a bad one."""
    levels = []
    for item in text.split(","):
        if not item.strip():
            continue
        try:
            level = float(item)
        except ValueError:
            raise ValueError(f"--noise: {item.strip()!r} is not a number") from None
        if not 0 <= level <= 1:
            raise ValueError(f"--noise levels must be in [0, 1], got {level:g}")
        levels.append(level)
    if not levels:
        raise ValueError("--noise needs at least one level, e.g. 0 or 0,0.5,1")
    return levels
