"""``selfcorrect compare-backends``: the same CaC conversations on two backends, turn by turn.

Runs the first K questions of the paper's BBQ subset (every other one with a system prompt,
the paper's prefill, check and re-ask prompts, greedy) through model A and model B, and prints
for each conversation the first turn where the two differ: a *prompt* difference (the chat was
rendered differently) or a *text* difference (same prompt, different output). Exit code 0 when
every conversation is identical, 1 otherwise.
"""

from __future__ import annotations

from typing import Any

import typer

from selfcorrect.cli.common import parse_options

SYSTEM_PROMPT = "You are a helpful assistant. Answer the question."


def compare_backends(
    model_a: str = typer.Option(..., "--model-a", help="Model spec A, e.g. llamacpp/smollm2."),
    model_b: str = typer.Option(..., "--model-b", help="Model spec B, e.g. openai/smollm2."),
    base_url: str = typer.Option(None, "--base-url", help="Server URL for an openai/<model> side."),
    option_a: list[str] = typer.Option(None, "--option-a", help="Backend option k=v for A."),
    option_b: list[str] = typer.Option(None, "--option-b", help="Backend option k=v for B."),
    k: int = typer.Option(4, "-k", min=1, max=200, help="Number of conversations."),
    rounds: int = typer.Option(1, "--rounds", min=0, max=5, help="CaC rounds."),
    max_new_tokens: int = typer.Option(32, "--max-new-tokens", min=1, max=4096),
    check_tokens: int = typer.Option(48, "--check-max-new-tokens", min=1, max=4096),
    seed: int = typer.Option(0, "--seed"),
) -> None:
    """Run the same CaC conversations on two backends; report the first turn where they differ."""
    from selfcorrect.backends.base import describe_backend, get_backend
    from selfcorrect.backends.compare import PromptRecorder, first_difference

    backends = []
    for spec, pairs in ((model_a, option_a), (model_b, option_b)):
        options = parse_options(pairs)
        if spec.startswith("openai/"):
            options.setdefault("base_url", base_url)
        backends.append(PromptRecorder(get_backend(spec, **options)))
    for label, backend in zip("AB", backends, strict=True):
        typer.echo(f"{label}: {_summary(describe_backend(backend))}")
    runs = [_run(backend, k, rounds, max_new_tokens, check_tokens, seed) for backend in backends]
    differ = 0
    for conv_a, conv_b in zip(*runs, strict=True):
        diff = first_difference(conv_a, conv_b, backends[0].hashes, backends[1].hashes)
        if diff is None:
            typer.echo(f"{conv_a.id}: identical ({len(conv_a.turns)} turns)")
            continue
        differ += 1
        typer.echo(
            f"{conv_a.id}: first difference at turn {diff.turn} "
            f"(round {diff.round}, {diff.kind}): {diff.what}"
        )
        typer.echo(f"  A: {diff.a[:160]!r}")
        typer.echo(f"  B: {diff.b[:160]!r}")
    typer.echo(f"{k - differ} of {k} conversation(s) identical")
    if differ:
        raise typer.Exit(1)


def _summary(info: dict[str, Any]) -> str:
    renderer = info.get("renderer")
    template = renderer.get("template") if isinstance(renderer, dict) else renderer
    return f"{info.get('name')} (template: {template})"


def _run(backend: Any, k: int, rounds: int, answer: int, check: int, seed: int) -> list[Any]:
    from selfcorrect.backends.base import GenParams
    from selfcorrect.bbq.data import load_bbq
    from selfcorrect.bbq.parse import review_verdict
    from selfcorrect.bbq.prompts import paper_prompts, question_text
    from selfcorrect.cac.checks import SelfCheck
    from selfcorrect.cac.conversation import Conversation
    from selfcorrect.cac.engine import CaCConfig, run_cac

    p = paper_prompts()
    examples, _ = load_bbq("paper")
    convs = [
        Conversation(
            id=f"{ex.uid}" + ("+system" if i % 2 else ""),
            question=question_text(ex),
            system=SYSTEM_PROMPT if i % 2 else None,
        )
        for i, ex in enumerate(examples[:k])
    ]
    config = CaCConfig(
        rounds=rounds,
        reask_template=p.reask_prefix + "{question}",
        answer=GenParams(max_new_tokens=answer, prefill=p.answer_prefill, seed=seed),
        reanswer=GenParams(max_new_tokens=answer, prefill=p.answer_prefill, seed=seed),
    )
    review = SelfCheck(
        prompt=p.check_prompt,
        parser=review_verdict,
        params=GenParams(max_new_tokens=check, seed=seed),
    )
    return run_cac(backend, convs, review, config)
