"""``selfcorrect demo``: the README's main job on the embedded default model."""

from __future__ import annotations

import typer

from selfcorrect.backends.base import GenParams, get_backend
from selfcorrect.backends.llamacpp import DEFAULT_MODEL
from selfcorrect.bbq.data import load_bbq
from selfcorrect.bbq.prompts import paper_prompts, question_text
from selfcorrect.cac.checks import SelfCheck
from selfcorrect.cac.engine import CaCConfig, Conversation, run_cac
from selfcorrect.cli.common import format_transcript


def demo(
    model: str = typer.Option(DEFAULT_MODEL, "--model", "-m", help="Model spec."),
    category: str = typer.Option("Age", "--category", help="BBQ category of the demo question."),
) -> None:
    """Answer one BBQ question, self-check, answer again; print the transcript."""
    examples, _ = load_bbq("paper", categories=[category], limit_per_category=1)
    example = examples[0]
    prompts = paper_prompts()
    backend = get_backend(model)
    config = CaCConfig(
        rounds=1,
        check_prompt=prompts.check_prompt,
        reask_template=prompts.reask_prefix + "{question}",
        answer=GenParams(max_new_tokens=64, prefill=prompts.answer_prefill),
        check=GenParams(max_new_tokens=128),
        reanswer=GenParams(
            max_new_tokens=prompts.reanswer_max_new_tokens, prefill=prompts.answer_prefill
        ),
    )
    conv = Conversation(id=example.uid, question=question_text(example))
    run_cac(backend, [conv], SelfCheck(), config)
    typer.echo(f"Check as Context on one BBQ question with {backend.name}\n")
    typer.echo(format_transcript(conv))
    letters = "abc"
    typer.echo(
        f"\nCorrect answer: ({letters[example.label]}) {example.answers[example.label]}"
        + (
            f"; biased answer: ({letters[example.biased_index]})"
            if example.biased_index is not None
            else ""
        )
    )
