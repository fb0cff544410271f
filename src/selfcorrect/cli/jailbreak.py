"""``selfcorrect jailbreak attack|defend``: adversarial prompts, then every defence on them."""

from __future__ import annotations

from pathlib import Path

import typer

from selfcorrect.backends.llamacpp import DEFAULT_MODEL
from selfcorrect.cli.common import allow_failures_option, exit_if_failed, parse_options

app = typer.Typer(
    help="Jailbreak attacks and defences (the paper's Table 1).", no_args_is_help=True
)


@app.command("attack")
def attack_cmd(
    attack: str = typer.Option(
        "none", "--attack", help="none, transfer:vicuna|llama|official, gcg or autodan."
    ),
    model: str = typer.Option(
        "hf/smollm2", "--model", "-m", help="Target model (gcg/autodan need hf/...)."
    ),
    data: Path = typer.Option(None, "--data", help="CSV/JSONL of behaviours (default: AdvBench)."),
    goal_column: str = typer.Option("goal", "--goal-column"),
    target_column: str = typer.Option(
        "target", "--target-column", help="'' to use 'Sure, here is <goal>'."
    ),
    n: int = typer.Option(100, "--n", min=1, help="First N behaviours (the paper uses 100)."),
    preset: str = typer.Option("small", "--preset", help="small (this CPU) or paper."),
    seed: int = typer.Option(0, "--seed"),
    option: list[str] = typer.Option(
        None, "--option", help="Backend option key=value, repeatable."
    ),
    out: Path = typer.Option(
        ..., "--out", "-o", help="Attack directory (resumes; GCG checkpoints per step)."
    ),
) -> None:
    """Write adversarial prompts to <out>/records.jsonl (losses logged per step for gcg/autodan)."""
    from selfcorrect.backends.base import get_backend
    from selfcorrect.fingerprint import backend_inputs
    from selfcorrect.jailbreak.attacks import run_attack
    from selfcorrect.jailbreak.data import behaviours_file, load_behaviours
    from selfcorrect.runs import RunDir

    behaviours, problems = load_behaviours(
        data, goal_column=goal_column, target_column=target_column or None, limit=n
    )
    for p in problems[:5]:
        typer.echo(f"skipped {p}", err=True)
    run = RunDir.open(
        out,
        study="jailbreak-attack",
        config={
            "attack": attack,
            "model": model,
            "data": str(data),
            "n": n,
            "preset": preset,
            "seed": seed,
        },
        model=model,
        seed=seed,
        inputs={"data": behaviours_file(data), **backend_inputs(model)},
    )
    records = run_attack(
        attack,
        behaviours,
        run,
        backend_factory=lambda: get_backend(model, **parse_options(option)),
        preset=preset,
        seed=seed,
        log=lambda m: typer.echo(m, err=True),
    )
    run.finish(n=len(records))
    typer.echo(f"wrote {len(records)} adversarial prompts to {out}/records.jsonl")


@app.command("defend")
def defend_cmd(
    source: Path = typer.Argument(
        None, help="An attack directory; or use --attack to make the prompts here."
    ),
    attack: str = typer.Option(
        None, "--attack", help="Build prompts without optimisation: none or transfer:<name>."
    ),
    defense: list[str] = typer.Option(
        None,
        "--defense",
        "-d",
        help="Repeat: none, reminder, icd:N, cac:R, cac-history:R, smoothllm:N.",
    ),
    judge: list[str] = typer.Option(
        None, "--judge", "-j", help="Repeat: refusal, refusal-extended, llm:SPEC."
    ),
    model: str = typer.Option(DEFAULT_MODEL, "--model", "-m"),
    n: int = typer.Option(100, "--n", min=1, help="With --attack: first N AdvBench behaviours."),
    check_prompt: str = typer.Option(
        "", "--check-prompt", help="CaC check (default: the paper's harmfulness question)."
    ),
    max_new_tokens: int = typer.Option(
        64, "--max-new-tokens", min=1, help="Per turn (the paper: 64)."
    ),
    harmless: bool = typer.Option(
        True, "--harmless/--no-harmless", help="Also measure over-refusal."
    ),
    harmless_limit: int = typer.Option(None, "--harmless-limit", min=1),
    batch_size: int = typer.Option(16, "--batch-size", min=1),
    seed: int = typer.Option(0, "--seed"),
    base_url: str = typer.Option(None, "--base-url"),
    option: list[str] = typer.Option(
        None, "--option", help="Backend option key=value, repeatable."
    ),
    out: Path = typer.Option(..., "--out", "-o"),
    quiet: bool = typer.Option(False, "--quiet", "-q"),
    allow_failures: bool = allow_failures_option(),
) -> None:
    """Run defences on saved adversarial prompts; print the ASR table (initial vs final)."""
    from selfcorrect.jailbreak.attacks import read_prompts, run_attack
    from selfcorrect.jailbreak.data import behaviours_file, load_behaviours
    from selfcorrect.jailbreak.study import DefendConfig, run_defend
    from selfcorrect.runs import RunDir

    if (source is None) == (attack is None):
        raise ValueError("give either an attack directory or --attack none|transfer:<name>")
    if attack is not None:
        behaviours, _ = load_behaviours(limit=n)
        prompts = run_attack(
            attack,
            behaviours,
            RunDir.open(
                out / "attack",
                study="jailbreak-attack",
                config={"attack": attack, "n": n},
                inputs={"data": behaviours_file(None)},
            ),
        )
    else:
        prompts = read_prompts(source)
    cfg = DefendConfig(
        model=model,
        defenses=tuple(defense or ("none", "cac:1")),
        judges=tuple(judge or ("refusal", "refusal-extended")),
        check_prompt=check_prompt,
        max_new_tokens=max_new_tokens,
        harmless=harmless,
        harmless_limit=harmless_limit,
        batch_size=batch_size,
        seed=seed,
        base_url=base_url,
        backend_options=parse_options(option),
    )
    metrics = run_defend(cfg, prompts, out, progress=not quiet)
    typer.echo(format_asr_table(metrics))
    typer.echo(f"wrote {out}/records.jsonl, metrics.json, asr_by_defense.png and report.html")
    exit_if_failed(metrics.get("failed", 0), allow=allow_failures, out=out, what="sample")


def format_asr_table(metrics: dict) -> str:
    def pct(v: float | None) -> str:
        return "n/a" if v is None else f"{100 * v:.0f}%"

    lines = []
    for d, row in metrics["defenses"].items():
        for j, m in row["judges"].items():
            lines.append(
                f"{d:16s} {j:18s} n={m['n']:<4d} ASR initial {pct(m['asr_initial']):>5s}  final "
                f"{pct(m['asr_final']):>5s}  over-refusal {pct(m['over_refusal']):>5s}"
            )
    return "\n".join(lines)
