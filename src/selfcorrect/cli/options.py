"""Command-line options shared by several commands, defined once (typer `Annotated` types)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated  # noqa: UP035 - typer reads these annotations at run time

import typer

Model = Annotated[str, typer.Option("--model", "-m", help="Model spec, e.g. llamacpp/smollm2.")]
BaseUrl = Annotated[str | None, typer.Option("--base-url", help="Server URL for openai/<model>.")]
BackendOptions = Annotated[
    list[str] | None,
    typer.Option(
        "--option",
        help="Backend option key=value, repeatable (e.g. preset=vicuna-fastchat, "
        "prefill_mode=completions, concurrency=16, device=cuda, dtype=bfloat16, cache_mb=0, "
        "template=vicuna_v1.1).",
    ),
]
Seed = Annotated[int, typer.Option("--seed", help="Sampling, oracle and bootstrap seed.")]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")]

# --- the BBQ study (bbq and bbq-ablation) ---------------------------------------------------
Prompt = Annotated[str, typer.Option("--prompt", help="question, instruction or cot.")]
Data = Annotated[
    str,
    typer.Option("--data", help="paper (1,100 ambiguous), full (6 categories), or a JSONL path."),
]
Categories = Annotated[
    list[str] | None, typer.Option("--categories", "-c", help="Repeat to pick categories.")
]
LimitPerCategory = Annotated[
    int | None, typer.Option("--limit-per-category", "-k", min=1, help="Questions per category.")
]
AnswerTokens = Annotated[
    int | None, typer.Option("--answer-tokens", min=1, help="Override the protocol's 256.")
]
CheckTokens = Annotated[
    int | None, typer.Option("--check-tokens", min=1, help="Override the protocol's 256.")
]
ReanswerTokens = Annotated[
    int | None, typer.Option("--reanswer-tokens", min=1, help="Override the protocol's 10.")
]
BatchSize = Annotated[
    int, typer.Option("--batch-size", min=1, help="Conversations in flight together.")
]
Protocol = Annotated[
    str,
    typer.Option(
        "--protocol",
        help="ours, or paper: the official code's template, system prompt and decoding for "
        "the model family (Vicuna, Llama-2-chat), as docs/FIDELITY.md describes.",
    ),
]
Out = Annotated[Path, typer.Option("--out", "-o", help="Run directory (rerun to resume).")]
