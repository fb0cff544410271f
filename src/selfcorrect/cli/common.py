"""Shared CLI pieces: user-error handling, interrupts, failed-sample exits, backend options,
transcript printing (model text stripped of terminal control sequences)."""

from __future__ import annotations

import os
import re
import signal
import sys
from pathlib import Path
from typing import Any

import typer

from selfcorrect.backends.base import BackendError, ModelSpecError
from selfcorrect.cac.conversation import Conversation
from selfcorrect.datafiles import DataError
from selfcorrect.runs import RECORDS, RunDirError, last_opened, read_records

# OSError covers --out on a file, a read-only or full disk, a missing path (FileNotFoundError).
USER_ERRORS = (ModelSpecError, DataError, RunDirError, BackendError, OSError, ValueError)
EXIT_SAMPLES_FAILED = 1  # the run finished, but some samples failed (see exit_if_failed)


class Interrupted(BaseException):
    """SIGINT or SIGTERM arrived; raised in the main thread so `finally` blocks run."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _on_signal(signum: int, _frame: Any) -> None:
    if getattr(_on_signal, "fired", False):  # a second signal while unwinding: stop now
        os._exit(128 + signum)
    _on_signal.fired = True  # type: ignore[attr-defined]
    raise Interrupted(signum)


def interrupted_line() -> str:
    """``interrupted: N finished records kept; ...`` with N read from the run directory this
    process opened last (just ``interrupted`` when it opened none)."""
    folder = last_opened()
    if folder is None:
        return "interrupted"
    try:
        n = len(read_records(folder / RECORDS))
    except RunDirError:
        return (
            f"interrupted: finished records are kept in {folder}; rerun the same command to resume"
        )
    return f"interrupted: {n} finished records kept; rerun the same command to resume"


def run_guarded(app: Any) -> None:
    """Run the typer app; user errors print one clear line and exit 2, with no traceback.

    Ctrl-C (SIGINT) and SIGTERM print `interrupted_line` and exit 130 / 143 (a second signal
    exits at once). Set SELFCORRECT_DEBUG=1 to see the traceback of a user error instead.
    """
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, _on_signal)
    try:
        app()  # standalone mode: typer reports usage errors itself (exit 2)
    except (Interrupted, KeyboardInterrupt) as exc:
        signum = exc.signum if isinstance(exc, Interrupted) else int(signal.SIGINT)
        typer.echo(interrupted_line(), err=True)
        sys.exit(128 + signum)
    except USER_ERRORS as exc:
        if os.environ.get("SELFCORRECT_DEBUG"):
            raise
        text = " ".join(
            line.strip() for line in strip_control(str(exc)).split("\n") if line.strip()
        )
        typer.echo(f"error: {text or type(exc).__name__}", err=True)
        sys.exit(2)


def allow_failures_option() -> Any:
    """The ``--allow-failures`` flag that `exit_if_failed` reads."""
    return typer.Option(
        False,
        "--allow-failures",
        help="Exit 0 even when some samples failed (they stay in failures.jsonl).",
    )


def exit_if_failed(
    failed: int, *, allow: bool, out: str | Path | None = None, what: str = "sample"
) -> None:
    """After the summary: N failed samples print one line and exit `EXIT_SAMPLES_FAILED` (1),
    unless `allow` (``--allow-failures``), when the line is a warning and the exit stays 0."""
    if not failed:
        return
    where = f" (see {Path(out) / 'failures.jsonl'})" if out is not None else ""
    line = f"{failed} {what}(s) failed{where}; rerun the same command to retry them"
    if allow:
        typer.echo(f"warning: {line}", err=True)
        return
    typer.echo(f"error: {line}, or pass --allow-failures to accept them", err=True)
    raise typer.Exit(EXIT_SAMPLES_FAILED)


# ANSI/VT escape sequences: CSI (ESC [ or 0x9b), OSC/DCS/SOS/PM/APC strings up to BEL or ST,
# and two-character escapes; then any other C0/C1 control but tab and newline, DEL, and the
# bidirectional overrides that reorder what a terminal shows (Trojan Source, CVE-2021-42574).
_ESCAPES = re.compile(
    r"(?:\x1b\[|\x9b)[0-?]*[ -/]*[@-~]?"
    r"|(?:\x1b[\]PX^_]|[\x90\x98\x9d\x9e\x9f])[^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c)?"
    r"|\x1b[ -/]*[0-~]?"
)
_BREAKS = str.maketrans({"\r": "\n", "\x85": "\n", "\u2028": "\n", "\u2029": "\n"})
_CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def strip_control(text: str) -> str:
    """`text` safe to print on a terminal: escape sequences and control characters removed
    (tab and newline kept; CR, NEL, U+2028 and U+2029 become newlines, CR LF one newline)."""
    text = _ESCAPES.sub("", text).replace("\r\n", "\n")
    text = text.translate(_BREAKS)
    return _CONTROLS.sub("", text)


def parse_options(pairs: list[str] | None, *, url_flag: bool = False) -> dict[str, Any]:
    """``key=value`` backend options; values read as bool, int, float, else string (a backend
    that takes text gets text back, see `get_backend`). `url_flag`: the command has its own
    ``--base-url``, which the run's identity records, so ``base_url`` as an option is refused."""
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
        name = key.strip().replace("-", "_")
        if name == "base_url" and url_flag:
            raise ValueError(f"backend option {pair!r}: use --base-url instead")
        options[name] = value
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

    lines = [f"=== {strip_control(conv.id)} ==="]
    for turn in conv.turns:
        label = ROLE_LABELS.get(turn.kind, turn.kind.upper())
        if turn.kind == "demo":
            label = f"DEMO {turn.role}"
        head = f"[round {turn.round}] {label}"
        if turn.verdict:
            head += f" (verdict: {strip_control(turn.verdict)})"
        if turn.completion_tokens:
            head += f"  <{turn.completion_tokens} tokens, {turn.seconds:.2f}s>"
        lines.append(head)
        for para in strip_control(turn.content).strip().split("\n") or [""]:
            lines.append(
                textwrap.fill(para, width, initial_indent="    ", subsequent_indent="    ")
                or "    "
            )
    if conv.error:
        lines.append(f"[error] {strip_control(conv.error)}")
    return "\n".join(lines)
