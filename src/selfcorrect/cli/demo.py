"""``selfcorrect demo``: the README's main job on the embedded default model.

A short BBQ run with Check as Context (one self-check round, 2 questions per category of the
paper's subset, shortened generation limits so it takes about a minute on 2 CPU cores), then one
transcript and the per-category table. The run directory resumes like any study.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer

from selfcorrect.backends.llamacpp import DEFAULT_MODEL
from selfcorrect.bbq.study import BBQConfig, run_bbq
from selfcorrect.cac.engine import Conversation, Turn
from selfcorrect.cli.bbq import format_table
from selfcorrect.cli.common import format_transcript


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
    record = json.loads((out / "records.jsonl").read_text().splitlines()[0])
    conv = Conversation(id=record["id"], question="", turns=[Turn(**t) for t in record["turns"]])
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
        f"\nRun directory: {out} (records.jsonl, metrics.json, accuracy_by_category.png, ...)"
    )
    typer.echo(
        "Note: a 135M model shows the machinery, not the paper's effect (that needs 7B-class models)."
    )
