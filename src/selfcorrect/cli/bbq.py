"""``selfcorrect bbq``: the BBQ self-correction study."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

import typer

from selfcorrect.backends.llamacpp import DEFAULT_MODEL
from selfcorrect.bbq.records import GRADERS, BBQMetrics, Grader
from selfcorrect.bbq.study import BBQConfig, run_bbq
from selfcorrect.cli import options as o
from selfcorrect.cli.common import allow_failures_option, exit_if_failed, parse_options

STUDY_FIELDS = (
    "model",
    "data",
    "limit_per_category",
    "rounds",
    "check",
    "prompt",
    "answer_tokens",
    "check_tokens",
    "reanswer_tokens",
    "batch_size",
    "seed",
    "base_url",
    "protocol",
)


def _config(values: Mapping[str, Any], conditions: list[str] | None = None) -> BBQConfig:
    """A study config from a command's values (lists to tuples, backend options parsed)."""
    return BBQConfig(
        categories=tuple(values["categories"] or ()),
        conditions=tuple(conditions or ("ambig", "disambig")),
        backend_options=parse_options(values["option"], url_flag=True),
        **{name: values[name] for name in STUDY_FIELDS},
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
    model: o.Model = DEFAULT_MODEL,
    rounds: int = typer.Option(
        1, "--rounds", "-r", min=0, help="CaC rounds after the initial answer."
    ),
    check: str = typer.Option(
        "self", "--check", help="self, verdict, oracle:P, model:SPEC or none."
    ),
    prompt: o.Prompt = "question",
    data: o.Data = "paper",
    categories: o.Categories = None,
    condition: list[str] = typer.Option(
        None, "--condition", help="ambig and/or disambig (default both)."
    ),
    limit_per_category: o.LimitPerCategory = None,
    answer_tokens: o.AnswerTokens = None,
    check_tokens: o.CheckTokens = None,
    reanswer_tokens: o.ReanswerTokens = None,
    batch_size: o.BatchSize = 16,
    seed: o.Seed = 0,
    base_url: o.BaseUrl = None,
    option: o.BackendOptions = None,
    protocol: o.Protocol = "ours",
    out: o.Out = ...,  # type: ignore[assignment]
    quiet: o.Quiet = False,
    fail_fast: bool = typer.Option(False, "--fail-fast", help="Stop at the first failed question."),
    grader: str = typer.Option(
        "both",
        "--grader",
        help="Which grading the summary table shows: official (the paper's code: first "
        "sentence, unknowns left out of accuracy), tolerant (ours) or both. metrics.json "
        "always holds both.",
    ),
    allow_failures: bool = allow_failures_option(),
) -> None:
    """Run CaC on BBQ and write records.jsonl, metrics.json and plots to --out."""
    graders(grader)  # a bad choice fails now, not after the run
    cfg = _config(locals(), condition)
    metrics = run_bbq(cfg, out, progress=not quiet, fail_fast=fail_fast)
    typer.echo(format_table(metrics, grader))
    if metrics["data_problems"]:
        typer.echo(
            f"{len(metrics['data_problems'])} malformed data row(s) skipped, e.g. {metrics['data_problems'][0]}",
            err=True,
        )
    typer.echo(f"\nwrote {out}/records.jsonl, metrics.json and plots")
    exit_if_failed(metrics["failed"], allow=allow_failures, out=out, what="question")


def bbq_ablation(
    kind: str = typer.Argument(
        ..., help="check-quality, rounds, check-type, model-size or intrinsic-vs-oracle."
    ),
    model: o.Model = DEFAULT_MODEL,
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
    prompt: o.Prompt = "question",
    data: o.Data = "paper",
    categories: o.Categories = None,
    limit_per_category: o.LimitPerCategory = None,
    answer_tokens: o.AnswerTokens = None,
    check_tokens: o.CheckTokens = None,
    reanswer_tokens: o.ReanswerTokens = None,
    batch_size: o.BatchSize = 16,
    seed: o.Seed = 0,
    base_url: o.BaseUrl = None,
    option: o.BackendOptions = None,
    protocol: o.Protocol = "ours",
    out: o.Out = ...,  # type: ignore[assignment]
    quiet: o.Quiet = False,
) -> None:
    """Run a BBQ ablation grid and draw its Figure 4 style plot."""
    from selfcorrect.bbq.ablation import run_ablation

    try:
        rates = [float(x) for x in error_rates.split(",") if x.strip()]
    except ValueError:
        raise ValueError(
            f"--error-rates must be numbers separated by commas, got {error_rates!r}"
        ) from None
    base = _config(locals())
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
