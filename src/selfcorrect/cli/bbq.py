"""``selfcorrect bbq``: the BBQ self-correction study."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, cast

import typer

from selfcorrect.backends.llamacpp import DEFAULT_MODEL
from selfcorrect.bbq.records import GRADERS, BBQMetrics, Grader
from selfcorrect.bbq.study import BBQConfig, run_bbq
from selfcorrect.cli.common import parse_options


def _config(
    *,
    categories: list[str] | None,
    condition: list[str] | None,
    option: list[str] | None,
    **fields: Any,
) -> BBQConfig:
    """A study config from command-line values (lists to tuples, backend options parsed)."""
    return BBQConfig(
        categories=tuple(categories or ()),
        conditions=tuple(condition or ("ambig", "disambig")),
        backend_options=parse_options(option),
        **fields,
    )


GRADER_TITLES = {
    "tolerant": "tolerant grader (whole answer; an unparsed answer counts as wrong)",
    "official": "official grader (first sentence, as the paper's code; unknown answers are "
    "left out of accuracy)",
}


def graders(choice: str) -> tuple[Grader, ...]:
    """The graders a ``--grader`` choice names: official, tolerant, or both (both, labelled)."""
    if choice == "both":
        return GRADERS
    if choice not in GRADERS:
        raise ValueError(f"unknown grader {choice!r}; use official, tolerant or both")
    return (cast(Grader, choice),)


def _pct(v: float | None) -> str:
    return "n/a" if v is None else f"{100 * v:.1f}%"


def _score(v: float | None) -> str:
    return "n/a" if v is None else f"{v + 0.0:+.3f}"


def _grader_rows(m: BBQMetrics, grader: str) -> list[str]:
    last = m.rounds
    rows = list(m.by_category.items()) + [("ALL", m.per_round)]
    if grader == "tolerant":
        lines = [
            f"{'category':22s} {'n':>5s} {'acc r0':>7s} {'acc r' + str(last):>7s}"
            f" {'unparsed':>9s} {'s_AMB':>7s}"
        ]
        for name, per in rows:
            lines.append(
                f"{name:22s} {per[0].n:5d} {_pct(per[0].accuracy):>7s}"
                f" {_pct(per[last].accuracy):>7s} {_pct(per[last].unparsed_rate):>9s}"
                f" {_score(per[last].bias_score_ambig.value):>7s}"
            )
        return lines
    lines = [
        f"{'category':22s} {'n':>5s} {'acc r0':>7s} {'acc r' + str(last):>7s}"
        f" {'unknown':>9s} {'s_AMB':>7s} {'s_AMB code':>10s}"
    ]
    for name, per in rows:
        first, end = per[0].official, per[last].official
        if first is None or end is None:
            return ["(not in this metrics.json: it predates the official grader)"]
        lines.append(
            f"{name:22s} {per[0].n:5d} {_pct(first.accuracy):>7s} {_pct(end.accuracy):>7s}"
            f" {_pct(end.unknown_rate):>9s} {_score(end.bias_score_ambig.value):>7s}"
            f" {_score(end.bias_score_ambig_paper_code.value):>10s}"
        )
    return lines


def format_table(metrics: Mapping[str, Any] | BBQMetrics, grader: str = "both") -> str:
    """Per-category accuracy at round 0 and the last round, the unparsed (tolerant) or unknown
    (official) share and the ambiguous bias score, plus the overall row, for `grader`
    (``tolerant``, ``official`` or ``both``, each table labelled); then check accuracy and flips.
    ``s_AMB code`` is the official code's variant (`bias_score_ambig_paper_code`)."""
    chosen = graders(grader)
    m = metrics if isinstance(metrics, BBQMetrics) else BBQMetrics.from_dict(metrics)
    if not m.per_round:
        return f"no question finished ({m.failed} failed): no metrics to show"
    lines: list[str] = []
    for g in chosen:
        lines += [GRADER_TITLES[g], *_grader_rows(m, g), ""]
    for chk in m.check_accuracy:
        lines.append(
            f"check accuracy round {chk.round}: {_pct(chk.accuracy)} of {chk.n} judged "
            f"({chk.n_unknown} unknown verdicts; tolerant grader)"
        )
    for fl in m.flips:
        lines.append(
            f"flips round {fl.round} (tolerant grader): wrong->right {fl.wrong_to_right}, "
            f"right->wrong {fl.right_to_wrong}, stayed right {fl.stayed_right}, "
            f"stayed wrong {fl.stayed_wrong}"
        )
    return "\n".join(lines).rstrip("\n")


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
    fail_fast: bool = typer.Option(False, "--fail-fast", help="Stop at the first failed question."),
    grader: str = typer.Option(
        "both",
        "--grader",
        help="Which grading the summary table shows: official (the paper's code: first "
        "sentence, unknowns left out of accuracy), tolerant (ours) or both. metrics.json "
        "always holds both.",
    ),
) -> None:
    """Run CaC on BBQ and write records.jsonl, metrics.json and plots to --out."""
    graders(grader)  # a bad choice fails now, not after the run
    cfg = _config(
        categories=categories,
        condition=condition,
        option=option,
        model=model,
        data=data,
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
    )
    metrics = run_bbq(cfg, out, progress=not quiet, fail_fast=fail_fast)
    typer.echo(format_table(metrics, grader))
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


def bbq_ablation(
    kind: str = typer.Argument(
        ..., help="check-quality, rounds, check-type, model-size or intrinsic-vs-oracle."
    ),
    model: str = typer.Option(
        DEFAULT_MODEL, "--model", "-m", help="Model spec (all kinds but model-size)."
    ),
    models: list[str] = typer.Option(None, "--models", help="model-size: repeat, smallest first."),
    error_rates: str = typer.Option(
        "0,0.25,0.5,0.75,1", "--error-rates", help="check-quality: oracle p grid."
    ),
    checks: list[str] = typer.Option(
        None, "--checks", help="check-type: checks to compare (default self, verdict)."
    ),
    check: str = typer.Option(
        "self", "--check", help="rounds / model-size / intrinsic-vs-oracle: the check source."
    ),
    rounds: int = typer.Option(
        1, "--rounds", "-r", min=1, help="CaC rounds (rounds: the maximum)."
    ),
    prompt: str = typer.Option("question", "--prompt", help="question, instruction or cot."),
    data: str = typer.Option("paper", "--data", help="paper, full, or a JSONL path."),
    categories: list[str] = typer.Option(
        None, "--categories", "-c", help="Repeat to pick categories."
    ),
    limit_per_category: int = typer.Option(None, "--limit-per-category", "-k", min=1),
    answer_tokens: int = typer.Option(None, "--answer-tokens", min=1),
    check_tokens: int = typer.Option(None, "--check-tokens", min=1),
    reanswer_tokens: int = typer.Option(None, "--reanswer-tokens", min=1),
    batch_size: int = typer.Option(16, "--batch-size", min=1),
    seed: int = typer.Option(0, "--seed"),
    base_url: str = typer.Option(None, "--base-url", help="Server URL for openai/<model>."),
    option: list[str] = typer.Option(
        None, "--option", help="Backend option key=value, repeatable."
    ),
    out: Path = typer.Option(
        ..., "--out", "-o", help="Directory of the grid (each point resumes)."
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q"),
) -> None:
    """Run a BBQ ablation grid and draw its Figure 4 style plot."""
    from selfcorrect.bbq.ablation import run_ablation

    try:
        rates = [float(x) for x in error_rates.split(",") if x.strip()]
    except ValueError:
        raise ValueError(
            f"--error-rates must be numbers separated by commas, got {error_rates!r}"
        ) from None
    base = _config(
        categories=categories,
        condition=None,
        option=option,
        model=model,
        data=data,
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
    )
    summary = run_ablation(
        kind,
        base,
        out,
        progress=not quiet,
        error_rates=rates,
        checks=tuple(checks or ("self", "verdict")),
        models=tuple(models or ()),
    )
    for p in summary["points"]:
        acc = " -> ".join("n/a" if a is None else f"{100 * a:.1f}%" for a in p["accuracy_by_round"])
        chk = "n/a" if p["check_accuracy"] is None else f"{100 * p['check_accuracy']:.1f}%"
        typer.echo(f"{p['label']:28s} accuracy {acc}; check accuracy {chk}")
    fit = summary.get("fit_gain_vs_check_accuracy")
    if fit:
        typer.echo(
            f"gain = {fit['intercept']:+.3f} {fit['slope']:+.3f} x check accuracy (R^2 {fit['r2']:.2f})"
        )
    typer.echo(f"wrote {out}/ablation.json and ablation_{kind.replace('-', '_')}.png/.svg")
