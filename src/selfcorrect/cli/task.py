"""``selfcorrect task``: Check as Context on any JSONL question set (or GSM8K, CommonsenseQA)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import typer

from selfcorrect.backends.llamacpp import DEFAULT_MODEL
from selfcorrect.cli import options as o
from selfcorrect.cli.common import allow_failures_option, exit_if_failed, parse_options


def _pct(v: float | None) -> str:
    return "n/a" if v is None else f"{100 * v:.1f}%"


def format_run(m: Mapping[str, Any]) -> str:
    """Accuracy (95% interval), unscored share and generated tokens per question per round,
    then flips and check accuracy per round."""
    if not m["per_round"]:
        return f"no question finished ({m['failed']} failed): no metrics to show"
    lines = [
        f"{'round':>5s} {'n':>5s} {'accuracy':>9s} {'95% CI':>15s} {'unscored':>9s} {'tokens/q':>9s}"
    ]
    tokens = {t["round"]: t for t in m["tokens_per_question"]}
    for r in m["per_round"]:
        lo, hi = r["accuracy_ci95"] or (0.0, 0.0)
        lines.append(
            f"{r['round']:5d} {r['n']:5d} {_pct(r['accuracy']):>9s} "
            f"{f'[{100 * lo:.1f}, {100 * hi:.1f}]':>15s} {_pct(r['unscored_rate']):>9s} "
            f"{tokens[r['round']]['generated_mean']:9.1f}"
        )
    for f in m["flips"]:
        lines.append(
            f"flips round {f['round']}: wrong->right {f['wrong_to_right']}, right->wrong "
            f"{f['right_to_wrong']}, stayed right {f['stayed_right']}, stayed wrong {f['stayed_wrong']}"
        )
    for c in m["check_accuracy"]:
        lines.append(
            f"check accuracy round {c['round']}: {_pct(c['accuracy'])} of {c['n']} judged "
            f"({c['n_unknown']} without a verdict)"
        )
    if m["stopped_early"]:
        lines.append(f"stopped early: {m['stopped_early']} of {m['n']}")
    return "\n".join(lines)


def format_compare(summary: Mapping[str, Any]) -> str:
    """One line per mode: first and final accuracy, flips, check accuracy, tokens per question."""
    lines = [
        f"{'mode':18s} {'n':>4s} {'acc r0':>7s} {'final':>7s} {'unscored':>9s} {'w->r':>5s} "
        f"{'r->w':>5s} {'check acc (judged)':>18s} {'tokens/q':>9s}"
    ]
    for r in summary["modes"]:
        tokens = "n/a" if r["tokens_per_question"] is None else f"{r['tokens_per_question']:.1f}"
        lines.append(
            f"{r['mode']:18s} {r['n']:4d} {_pct(r['accuracy_first']):>7s} "
            f"{_pct(r['accuracy_final']):>7s} {_pct(r['unscored_final']):>9s} "
            f"{r['wrong_to_right']:5d} {r['right_to_wrong']:5d} "
            f"{_pct(r['check_accuracy']) + ' (' + str(r['checks_judged']) + ')':>18s} "
            f"{tokens:>9s}"
        )
    sc = summary.get("self_consistency")
    if sc:
        lines.append(
            f"{'self-consistency':18s} {sc['n']:4d} {_pct(sc['curve'][0]['accuracy']):>7s} "
            f"{_pct(sc['accuracy']):>7s} {_pct(sc['unscored_rate']):>9s} {'':>5s} {'':>5s} "
            f"{'':>18s} {sc['tokens_per_question']:9.1f}"
        )
        if sc.get("matched_to"):
            lines.append(
                f"self-consistency: k = {sc['k']} (T = {sc['temperature']:g}) matched to "
                f"{sc['matched_to']}'s {sc['target_tokens_per_question']:.1f} generated tokens per "
                "question; its 'acc r0' is k = 1"
            )
    return "\n".join(lines)


def task(
    data: str = typer.Option(
        ..., "--data", help="gsm8k, csqa (vendored) or a JSONL file (one question per line)."
    ),
    question_field: str = typer.Option(
        "question", "--question-field", help="Field with the question (a.b reads nested fields)."
    ),
    answer_field: str = typer.Option(
        "answer", "--answer-field", help="Field with the gold answer."
    ),
    choices_field: str = typer.Option(
        None,
        "--choices-field",
        help="Field with the options (list, {label: text} or [{label, text}]).",
    ),
    id_field: str = typer.Option(
        None, "--id-field", help="Field with a unique id (default: line number)."
    ),
    scorer: str = typer.Option(
        None,
        "--scorer",
        help="exact, numeric, choice, regex:PATTERN or llm:SPEC (default: numeric for gsm8k, "
        "choice for csqa).",
    ),
    check: str = typer.Option(
        "self", "--check", help="none, self, verdict, oracle:P or model:SPEC."
    ),
    rounds: int = typer.Option(
        1, "--rounds", "-r", min=0, help="CaC rounds after the first answer."
    ),
    stop: str = typer.Option(
        None,
        "--stop",
        help="never (the default: fixed rounds, last answer), oracle (stop when the ground truth "
        "accepts the answer) or check (stop when the check passes it). Not with --compare.",
    ),
    compare: str = typer.Option(
        None,
        "--compare",
        help="Run modes side by side into --out/<mode>: intrinsic, oracle-stopped, oracle-check, "
        "self-consistency (comma-separated).",
    ),
    prompt: str = typer.Option("direct", "--prompt", help="direct or cot (reason, then answer)."),
    limit: int = typer.Option(
        None,
        "--limit",
        "-n",
        min=1,
        help="A seeded random sample of N questions (file order kept).",
    ),
    answer_tokens: int = typer.Option(256, "--answer-tokens", min=1),
    check_tokens: int = typer.Option(256, "--check-tokens", min=1),
    reanswer_tokens: int = typer.Option(
        None, "--reanswer-tokens", min=1, help="Default: --answer-tokens."
    ),
    followup_tokens: int = typer.Option(
        16, "--followup-tokens", min=1, help="cot: the final answer."
    ),
    sc_temperature: float = typer.Option(
        None, "--sc-temperature", help="Self-consistency sampling (default 0.7)."
    ),
    sc_max_k: int = typer.Option(
        None, "--sc-max-k", min=1, help="Most samples self-consistency draws (default 16)."
    ),
    sc_k: int = typer.Option(None, "--sc-k", min=1, help="Fixed k instead of matching tokens."),
    model: o.Model = DEFAULT_MODEL,
    base_url: o.BaseUrl = None,
    option: o.BackendOptions = None,
    batch_size: o.BatchSize = 16,
    seed: o.Seed = 0,
    out: o.Out = ...,  # type: ignore[assignment]
    quiet: o.Quiet = False,
    fail_fast: bool = typer.Option(False, "--fail-fast", help="Stop at the first failed question."),
    allow_failures: bool = allow_failures_option(),
) -> None:
    """Run CaC on a question set; write records.jsonl, metrics.json, plots and report.html."""
    from selfcorrect.tasks.compare import parse_modes
    from selfcorrect.tasks.study import TaskConfig, run_task

    given = {"--sc-temperature": sc_temperature, "--sc-max-k": sc_max_k, "--sc-k": sc_k}
    sc_options = [name for name, value in given.items() if value is not None]
    if compare and stop is not None:
        raise ValueError(
            "--stop does not apply with --compare: each mode sets its own stop rule "
            "(intrinsic never, oracle-stopped oracle, oracle-check check)"
        )
    if sc_options and not (compare and "self-consistency" in parse_modes(compare)):
        raise ValueError(
            f"self-consistency options ({', '.join(sc_options)}) need --compare with the "
            "self-consistency mode"
        )
    cfg = TaskConfig(
        model=model,
        data=data,
        question_field=question_field,
        answer_field=answer_field,
        choices_field=choices_field,
        id_field=id_field,
        scorer=scorer,
        check=check,
        rounds=rounds,
        stop=stop or "never",  # type: ignore[arg-type]  # validated by TaskConfig
        prompt=prompt,
        limit=limit,
        answer_tokens=answer_tokens,
        check_tokens=check_tokens,
        reanswer_tokens=reanswer_tokens,
        followup_tokens=followup_tokens,
        batch_size=batch_size,
        seed=seed,
        base_url=base_url,
        backend_options=parse_options(option, url_flag=True),
    )
    if compare:
        from selfcorrect.tasks.compare import run_compare

        sc = {name[2:].replace("-", "_"): given[name] for name in sc_options}
        summary = run_compare(cfg, compare, out, progress=not quiet, fail_fast=fail_fast, **sc)
        typer.echo(format_compare(summary))
        typer.echo(f"\nwrote {out}/compare.json, accuracy_vs_tokens.png and report.html")
        failed = sum(r["failed"] for r in summary["modes"])
        failed += (summary["self_consistency"] or {}).get("failed", 0)
        exit_if_failed(failed, allow=allow_failures, out=f"{out}/<mode>", what="sample")
        return
    metrics = run_task(cfg, out, progress=not quiet, fail_fast=fail_fast)
    typer.echo(format_run(metrics))
    if metrics["data_problems"]:
        typer.echo(
            f"{len(metrics['data_problems'])} data row(s) skipped, e.g. {metrics['data_problems'][0]}",
            err=True,
        )
    if (Path(out) / "report.html").exists():
        typer.echo(f"\nwrote {out}/records.jsonl, metrics.json, plots and report.html")
    else:
        typer.echo(f"\nwrote {out}/metrics.json (no question finished: no plots, no report)")
    exit_if_failed(metrics["failed"], allow=allow_failures, out=out, what="question")
