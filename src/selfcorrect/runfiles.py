"""Reading run-directory files tolerantly: records, config.yaml, JSON files.

Every reader of a run directory (resume, report, defend's prompts, the demo) goes through these, so
they share one behaviour: JSONL is split on ``\\n`` only (never `str.splitlines`, which also splits
on U+2028, U+0085 and other characters that model text may hold); bytes after the last newline
are a torn write from a killed run and are ignored; records are deduplicated by id (the first is
kept, duplicates are logged); anything corrupt raises `RunDirError` naming the file (and line).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import yaml

log = logging.getLogger("selfcorrect.runs")


class RunDirError(RuntimeError):
    """The run directory cannot be used as asked (different config, corrupt records...)."""


# --- reading --------------------------------------------------------------------------------


def read_lines(path: Path) -> tuple[list[tuple[int, dict[str, Any]]], int]:
    """``(line number, record)`` of a JSONL file written by us, and the byte length of its intact
    part.

    Each record is written as one line ending in ``\\n``, so bytes after the last newline are a
    torn write from a killed run: they are ignored. Lines are split on ``\\n`` only (never
    `str.splitlines`, which also splits on U+2028, U+0085 and other characters model text may
    hold). A bad line before the end is corruption and raises `RunDirError` naming the line.
    """
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return [], 0
    except OSError as exc:
        raise RunDirError(f"{path}: cannot read ({exc.strerror or exc})") from exc
    complete, newline, _torn = data.rpartition(b"\n")
    out: list[tuple[int, dict[str, Any]]] = []
    for i, line in enumerate(complete.split(b"\n") if newline else []):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except (ValueError, RecursionError) as exc:  # RecursionError: nested too deep
            raise RunDirError(f"{path}:{i + 1}: corrupt record ({exc})") from exc
        if not isinstance(obj, dict):
            raise RunDirError(
                f"{path}:{i + 1}: corrupt record (a JSON {type(obj).__name__}, not an object)"
            )
        out.append((i + 1, obj))
    return out, len(complete) + len(newline)


def dedup_by_id(
    rows: list[tuple[int, dict[str, Any]]],
) -> tuple[list[tuple[int, dict[str, Any]]], list[str]]:
    seen: set[str] = set()
    kept, dupes = [], []
    for line, rec in rows:
        if "id" in rec:
            key = str(rec["id"])
            if key in seen:
                dupes.append(key)
                continue
            seen.add(key)
        kept.append((line, rec))
    return kept, dupes


def read_records_with_lines(path: str | Path) -> list[tuple[int, dict[str, Any]]]:
    """`read_records` with each record's line number."""
    rows, _ = read_lines(Path(path))
    kept, dupes = dedup_by_id(rows)
    if dupes:
        log.warning(
            "%s: %d duplicate record(s) ignored (ids %s); the first of each is kept",
            path,
            len(dupes),
            ", ".join(dupes[:5]) + (", ..." if len(dupes) > 5 else ""),
        )
    return kept


def read_records(path: str | Path) -> list[dict[str, Any]]:
    """The records of a ``records.jsonl`` (or ``failures.jsonl``): a torn last line ignored,
    duplicates by id dropped (keeping the first, with a warning), corruption named."""
    return [rec for _, rec in read_records_with_lines(path)]


def _read_text(file: Path) -> str | None:
    """The file's text, None when it does not exist; unreadable or undecodable names it."""
    try:
        return file.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise RunDirError(f"{file}: cannot read ({exc})") from exc


def read_config(folder: str | Path) -> dict[str, Any]:
    """A run's ``config.yaml`` as a mapping ({} when absent); malformed YAML names the file."""
    file = Path(folder) / "config.yaml"
    text = _read_text(file)
    if text is None:
        return {}
    try:
        data = yaml.safe_load(text)
    except (yaml.YAMLError, RecursionError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise RunDirError(f"{file}: not valid YAML ({first})") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise RunDirError(f"{file}: expected a mapping of settings, got {type(data).__name__}")
    return data


def read_json_file(path: str | Path) -> dict[str, Any]:
    """A JSON object file written by a run ({} when absent); a corrupt one names the file."""
    file = Path(path)
    text = _read_text(file)
    if text is None:
        return {}
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise RunDirError(f"{file}: corrupt JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise RunDirError(f"{file}: expected a JSON object, got {type(data).__name__}")
    return data


def write_text_atomic(file: Path, text: str) -> Path:
    """Write through a temporary file and a rename: a killed writer leaves the old file or the
    new one, never a torn one."""
    tmp = file.with_suffix(file.suffix + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(file)
    return file
