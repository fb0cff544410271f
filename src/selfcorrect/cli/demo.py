"""``selfcorrect demo``: the README's main job on the embedded default model.

A short BBQ run with Check as Context (one self-check round, 2 questions per category of the
paper's subset, shortened generation limits so it takes about a minute on 2 CPU cores), one
transcript and the per-category table; then the theory check that a hand-weighted transformer
performs gradient descent on the PL loss; then one HTML report of both. The BBQ run resumes like
any study.
"""

from __future__ import annotations

from pathlib import Path

import typer

from selfcorrect.backends.llamacpp import DEFAULT_MODEL
from selfcorrect.bbq.study import BBQConfig, run_bbq
from selfcorrect.cac.conversation import Conversation, Turn
from selfcorrect.cli.bbq import format_table
from selfcorrect.cli.common import EXIT_SAMPLES_FAILED, format_transcript
from selfcorrect.report.html import render_report
from selfcorrect.runs import read_records


def demo(
    model: str = typer.Option(DEFAULT_MODEL, "--model", "-m", help="Model spec."),
    per_category: int = typer.Option(
        2, "--per-category", min=1, help="BBQ questions per category."
    ),
    out: Path = typer.Option(Path("runs/demo/bbq"), "--out", "-o", help="Run directory."),
) -> None:
    """Self-correct on BBQ with the embedded model: transcript, table, files."""
    cfg = BBQConfig(
        model=model,
        data="paper",
        limit_per_category=per_category,
        rounds=1,
        check="self",
        answer_tokens=32,
        check_tokens=96,
        reanswer_tokens=10,
        batch_size=8,
    )
    typer.echo(
        f"Check as Context on BBQ ({per_category} ambiguous questions x 11 categories) with {model}"
    )
    typer.echo("(one self-check round; answer 32, check 96, re-answer 10 new tokens at most)\n")
    metrics = run_bbq(cfg, out)
    records = read_records(out / "records.jsonl")
    if not records:
        typer.echo(
            f"error: no demo question finished ({metrics['failed']} failed, see "
            f"{out / 'failures.jsonl'}); rerun the same command to retry them",
            err=True,
        )
        raise typer.Exit(EXIT_SAMPLES_FAILED)
    record = records[0]
    conv = Conversation(
        id=record["id"], question="", turns=[Turn.from_dict(t) for t in record["turns"]]
    )
    typer.echo("\nOne conversation:\n" + format_transcript(conv))
    letters = "abc"
    typer.echo(
        f"Correct: ({letters[record['label']]}) {record['answers'][record['label']]}"
        + (
            f"; biased: ({letters[record['biased_index']]})"
            if record["biased_index"] is not None
            else ""
        )
        + "\n"
    )
    typer.echo(format_table(metrics))
    typer.echo(
        "Note: a 135M model shows the machinery, not the paper's effect (that needs 7B-class models)."
    )
    construct_dir = out.parent / "construct"
    typer.echo(
        "\nTheory: the hand-weighted transformer that performs GD on the PL loss (d=5, N=20)..."
    )
    _construction(construct_dir)
    page = render_report(
        [out, construct_dir],
        out.parent / "report.html",
        title="selfcorrect demo: Check as Context on BBQ, and a transformer that does GD in context",
    )
    typer.echo(f"\nRun directory: {out} (records.jsonl, metrics.json, plots)")
    typer.echo(f"Report: {page.resolve()}")


def _construction(out: Path) -> None:
    from selfcorrect.theory.construct_study import run_construction

    table = run_construction(out, betas=(10, 100, 1e3, 1e4), n_problems=100)
    best = min(r["max_abs_error"] for r in table["by_beta"] if r["steps"] == 3)
    typer.echo(
        f"max |constructed TF - explicit GD| after 3 steps, 100 problems, float64: {best:.1e}"
    )
    for row in table["ablations"][1:]:
        typer.echo(f"  {row['variant']:28s} max error {row['max_abs_error']:.1e}")
