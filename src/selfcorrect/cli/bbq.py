"""``selfcorrect bbq``: the BBQ self-correction study."""

from __future__ import annotations

from pathlib import Path

import typer

from selfcorrect.backends.llamacpp import DEFAULT_MODEL
from selfcorrect.bbq.study import BBQConfig, run_bbq
from selfcorrect.cli.common import parse_options


def format_table(metrics: dict) -> str:
    """Per-category accuracy at round 0 and the last round, plus the overall row."""
    last = metrics["rounds"]

    def pct(v: float | None) -> str:
        return "  n/a" if v is None else f"{100 * v:5.1f}"

    lines = [
        f"{'category':22s} {'n':>5s} {'acc r0':>7s} {'acc r' + str(last):>7s} {'unparsed':>9s} {'s_AMB':>7s}"
    ]
    rows = list(metrics["by_category"].items()) + [("ALL", metrics["per_round"])]
    for name, per_round in rows:
        s_amb = per_round[last]["bias_score_ambig"]["value"]
        lines.append(
            f"{name:22s} {per_round[0]['n']:5d} {pct(per_round[0]['accuracy']):>7s} {pct(per_round[last]['accuracy']):>7s}"
            f" {pct(per_round[last]['unparsed_rate']):>9s} {'n/a' if s_amb is None else f'{s_amb + 0.0:+.3f}':>7s}"
        )
    for chk in metrics["check_accuracy"]:
        lines.append(
            f"check accuracy round {chk['round']}: {pct(chk['accuracy'])}% of {chk['n']} judged "
            f"({chk['n_unknown']} unknown verdicts)"
        )
    for fl in metrics["flips"]:
        lines.append(
            f"flips round {fl['round']}: wrong->right {fl['wrong_to_right']}, right->wrong "
            f"{fl['right_to_wrong']}, stayed right {fl['stayed_right']}, stayed wrong {fl['stayed_wrong']}"
        )
    return "\n".join(lines)


def bbq(
    model: str = typer.Option(DEFAULT_MODEL, "--model", "-m", help="Model spec."),
    rounds: int = typer.Option(
        1, "--rounds", "-r", min=0, help="CaC rounds after the initial answer."
    ),
    check: str = typer.Option(
        "self", "--check", help="none, self, verdict, oracle:P or model:SPEC."
    ),
    prompt: str = typer.Option("question", "--prompt", help="question, instruction or cot."),
    data: str = typer.Option(
        "paper", "--data", help="paper (1,100 ambiguous), full (6 categories), or a JSONL path."
    ),
    categories: list[str] = typer.Option(
        None, "--categories", "-c", help="Repeat to pick categories."
    ),
    condition: list[str] = typer.Option(
        None, "--condition", help="ambig and/or disambig (default both)."
    ),
    limit_per_category: int = typer.Option(
        None, "--limit-per-category", "-k", min=1, help="Questions per category."
    ),
    answer_tokens: int = typer.Option(
        None, "--answer-tokens", min=1, help="Override the protocol's 256."
    ),
    check_tokens: int = typer.Option(
        None, "--check-tokens", min=1, help="Override the protocol's 256."
    ),
    reanswer_tokens: int = typer.Option(
        None, "--reanswer-tokens", min=1, help="Override the protocol's 10."
    ),
    batch_size: int = typer.Option(
        16, "--batch-size", min=1, help="Conversations advanced together."
    ),
    seed: int = typer.Option(0, "--seed", help="Sampling, oracle and bootstrap seed."),
    base_url: str = typer.Option(None, "--base-url", help="Server URL for openai/<model>."),
    option: list[str] = typer.Option(
        None,
        "--option",
        help="Backend option key=value, repeatable (e.g. prefill_mode=completions, "
        "concurrency=16, device=cuda, dtype=bfloat16, batch_size=32, cache_mb=0, template=vicuna_v1.1).",
    ),
    out: Path = typer.Option(
        ..., "--out", "-o", help="Run directory (rerun the same command to resume)."
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> None:
    """Run CaC on BBQ and write records.jsonl, metrics.json and plots to --out."""
    cfg = BBQConfig(
        model=model,
        data=data,
        categories=tuple(categories or ()),
        conditions=tuple(condition or ("ambig", "disambig")),
        limit_per_category=limit_per_category,
        rounds=rounds,
        check=check,
        prompt=prompt,
        answer_tokens=answer_tokens,
        check_tokens=check_tokens,
        reanswer_tokens=reanswer_tokens,
        batch_size=batch_size,
        seed=seed,
        base_url=base_url,
        backend_options=parse_options(option),
    )
    metrics = run_bbq(cfg, out, progress=not quiet)
    typer.echo(format_table(metrics))
    if metrics["failed"]:
        typer.echo(
            f"{metrics['failed']} question(s) failed (see {out}/failures.jsonl); rerun to retry them",
            err=True,
        )
    if metrics["data_problems"]:
        typer.echo(
            f"{len(metrics['data_problems'])} malformed data row(s) skipped, e.g. {metrics['data_problems'][0]}",
            err=True,
        )
    typer.echo(f"\nwrote {out}/records.jsonl, metrics.json and plots")
