"""Shared CLI pieces: user-error handling, backend options, transcript printing."""

from __future__ import annotations

import os
import sys
from typing import Any

import typer

from selfcorrect.backends.base import BackendError, ModelSpecError
from selfcorrect.cac.engine import Conversation
from selfcorrect.datafiles import DataError
from selfcorrect.runs import RunDirError

USER_ERRORS = (ModelSpecError, DataError, RunDirError, BackendError, FileNotFoundError, ValueError)


def run_guarded(app: Any) -> None:
    """Run the typer app; user errors print one clear line and exit 2, with no traceback.

    Set SELFCORRECT_DEBUG=1 to see the traceback instead.
    """
    try:
        app()  # standalone mode: typer reports usage errors itself (exit 2)
    except KeyboardInterrupt:
        typer.echo(
            "interrupted: finished records are kept; rerun the same command to resume", err=True
        )
        sys.exit(130)
    except USER_ERRORS as exc:
        if os.environ.get("SELFCORRECT_DEBUG"):
            raise
        typer.echo(f"error: {exc}", err=True)
        sys.exit(2)


def parse_options(pairs: list[str] | None) -> dict[str, Any]:
    """``key=value`` backend options; values read as bool, int, float, else string."""
    options: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, raw = pair.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"backend option {pair!r} must look like key=value")
        value: Any = raw
        if raw.lower() in ("true", "false"):
            value = raw.lower() == "true"
        else:
            for cast in (int, float):
                try:
                    value = cast(raw)
                    break
                except ValueError:
                    continue
        options[key.strip().replace("-", "_")] = value
    return options


ROLE_LABELS = {
    "system": "SYSTEM",
    "demo": "DEMO",
    "question": "USER",
    "answer": "MODEL",
    "check_prompt": "CHECK?",
    "check": "CHECK",
    "reask": "USER",
}


def format_transcript(conv: Conversation, *, width: int = 100) -> str:
    """A readable transcript: one block per turn, labelled with round and kind."""
    import textwrap

    lines = [f"=== {conv.id} ==="]
    for turn in conv.turns:
        label = ROLE_LABELS.get(turn.kind, turn.kind.upper())
        if turn.kind == "demo":
            label = f"DEMO {turn.role}"
        head = f"[round {turn.round}] {label}"
        if turn.verdict:
            head += f" (verdict: {turn.verdict})"
        if turn.completion_tokens:
            head += f"  <{turn.completion_tokens} tokens, {turn.seconds:.2f}s>"
        lines.append(head)
        for para in turn.content.strip().splitlines() or [""]:
            lines.append(
                textwrap.fill(para, width, initial_indent="    ", subsequent_indent="    ")
                or "    "
            )
    if conv.error:
        lines.append(f"[error] {conv.error}")
    return "\n".join(lines)
