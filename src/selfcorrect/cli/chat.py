"""``selfcorrect chat``: talk to any backend, optionally with N rounds of Check as Context."""

from __future__ import annotations

import sys

import typer

from selfcorrect.backends.base import GenParams, get_backend
from selfcorrect.backends.llamacpp import DEFAULT_MODEL
from selfcorrect.cac.checks import CheckSettings, make_check
from selfcorrect.cac.conversation import Conversation
from selfcorrect.cac.engine import CaCConfig, run_cac
from selfcorrect.cli.common import format_transcript, parse_options
from selfcorrect.specs import FAMILIES, parse, served_options

DEFAULT_REASK = "Based on your review, answer the question again:\n{question}"
MAX_STDIN_LINE = 65_536  # characters per question read from standard input


def chat(
    message: str = typer.Argument(None, help="One-shot message; omit for an interactive session."),
    model: str = typer.Option(
        DEFAULT_MODEL, "--model", "-m", help="Model spec, e.g. llamacpp/smollm2."
    ),
    rounds: int = typer.Option(
        0, "--rounds", "-r", min=0, help="CaC rounds after the first answer."
    ),
    check: str = typer.Option(
        "self", "--check", help=f"Check: {FAMILIES['check'].usage()} (oracle needs ground truth)."
    ),
    check_prompt: str = typer.Option(
        None, "--check-prompt", help="Asked after each answer (default: the check's own)."
    ),
    yes_means: str = typer.Option(
        "fail",
        "--yes-means",
        help="What 'yes' to a verdict --check-prompt means: fail (as for the default 'Is your "
        "previous answer wrong?') or pass (for 'Is your answer correct?').",
    ),
    reask: str = typer.Option(
        DEFAULT_REASK, "--reask", help="Re-ask template; {question} is the message."
    ),
    system: str = typer.Option(None, "--system", help="System prompt."),
    prefill: str = typer.Option(
        "", "--prefill", help="Start of every answer (e.g. 'The answer is')."
    ),
    max_new_tokens: int = typer.Option(256, "--max-new-tokens", min=1, help="Per answer."),
    check_max_new_tokens: int = typer.Option(
        256, "--check-max-new-tokens", min=1, help="Per check."
    ),
    temperature: float = typer.Option(0.0, "--temperature", min=0.0, help="0 = greedy."),
    seed: int = typer.Option(0, "--seed", help="Sampling seed."),
    final: str = typer.Option("last", "--final", help="Final answer: last or first_accepted."),
    base_url: str = typer.Option(None, "--base-url", help="Server URL for openai/<model>."),
    checker_base_url: str = typer.Option(
        None,
        "--checker-base-url",
        help="Server URL for model:openai/<m> (default: --base-url, never api.openai.com "
        "unless given).",
    ),
    option: list[str] = typer.Option(
        None,
        "--option",
        help="Backend option key=value, repeatable (e.g. prefill_mode=completions, "
        "concurrency=16, device=cuda, dtype=bfloat16, batch_size=32, cache_mb=0, template=vicuna_v1.1).",
    ),
) -> None:
    """Chat with a model; with --rounds N, each answer is checked and re-asked N times."""
    spec = parse("check", check)  # a typo fails even when no round would use the check
    checker_options: dict[str, object] = (
        {"base_url": checker_base_url} if checker_base_url else served_options(spec, base_url)
    )
    settings = CheckSettings(
        prompt=check_prompt,
        verdict_prompt=check_prompt,
        yes_means=yes_means,  # type: ignore[arg-type]
        params=GenParams(max_new_tokens=check_max_new_tokens, temperature=temperature, seed=seed),
        checker_options=checker_options,
    )
    answer = GenParams(
        max_new_tokens=max_new_tokens, temperature=temperature, seed=seed, prefill=prefill
    )
    config = CaCConfig(
        rounds=rounds,
        reask_template=reask,
        answer=answer,
        reanswer=answer,
        final_policy=final,  # type: ignore[arg-type]
    )
    source = make_check(spec, settings) if rounds else None
    backend = get_backend(model, base_url=base_url, **parse_options(option, url_flag=True))

    def one(text: str, number: int) -> None:
        conv = Conversation(id=f"chat-{number}", question=text, system=system)
        run_cac(backend, [conv], source, config)
        typer.echo(format_transcript(conv))

    if message is not None:
        one(message, 1)
        return
    interactive = sys.stdin.isatty()
    number = lineno = 0
    while True:
        if interactive:
            typer.echo("you> ", nl=False)
        line = sys.stdin.readline(MAX_STDIN_LINE + 1)
        if not line:
            break
        lineno += 1
        if len(line) > MAX_STDIN_LINE and not line.endswith("\n"):
            raise ValueError(
                f"standard input line {lineno} is longer than {MAX_STDIN_LINE:,} characters; "
                "chat reads one question per line"
            )
        if "\x00" in line:
            raise ValueError(f"standard input line {lineno} holds a NUL character")
        if line.strip():
            number += 1
            one(line.strip(), number)
