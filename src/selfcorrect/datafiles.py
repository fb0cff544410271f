"""Vendored data files and tolerant row readers shared by the study loaders.

Readers return the good rows *and* a list of `RowProblem`s (file, line, what is wrong), so a study
can report bad rows and carry on; with ``strict=True`` the first problem raises `DataError`.
Nothing read from a data file is ever executed or used as a format string.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import Any

MAX_LINE_BYTES = 1 << 20  # a single data row over 1 MiB is treated as malformed


class DataError(ValueError):
    """A data file cannot be used; the message names the file and line."""


@dataclass(frozen=True)
class RowProblem:
    path: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.message}"


def vendored(*parts: str) -> Path:
    """Path of a file shipped in ``selfcorrect/data`` (see its ATTRIBUTION.md)."""
    path = Path(str(files("selfcorrect").joinpath("data", *parts)))
    if not path.exists():
        raise DataError(f"vendored data file missing: {path}")
    return path


def protocol() -> dict[str, Any]:
    """The paper's protocol values (prompts, refusal strings, hyper-parameters)."""
    import yaml

    return dict(yaml.safe_load(vendored("protocol", "paper_protocol.yaml").read_text()))


def _check_file(path: Path) -> None:
    if not path.exists():
        raise DataError(f"{path}: no such file")
    if path.is_dir():
        raise DataError(f"{path}: is a directory, expected a file")
    if path.stat().st_size == 0:
        raise DataError(f"{path}: file is empty")


def _decoded_lines(path: Path, problems: list[RowProblem]) -> Iterator[tuple[int, str]]:
    with open(path, "rb") as fh:
        for number, raw in enumerate(fh, start=1):
            if len(raw) > MAX_LINE_BYTES:
                problems.append(
                    RowProblem(str(path), number, f"line longer than {MAX_LINE_BYTES} bytes")
                )
                continue
            try:
                yield number, raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                problems.append(RowProblem(str(path), number, f"not valid UTF-8 ({exc.reason})"))


def read_jsonl(
    path: str | Path, *, strict: bool = False
) -> tuple[list[tuple[int, dict[str, Any]]], list[RowProblem]]:
    """``(line number, object)`` for each good line, and the problems found."""
    path = Path(path)
    _check_file(path)
    rows: list[tuple[int, dict[str, Any]]] = []
    problems: list[RowProblem] = []
    for number, text in _decoded_lines(path, problems):
        if not text.strip():
            continue
        try:
            obj = json.loads(text)
        except ValueError as exc:
            problems.append(
                RowProblem(str(path), number, f"invalid JSON ({getattr(exc, 'msg', exc)})")
            )
            continue
        if not isinstance(obj, dict):
            problems.append(
                RowProblem(str(path), number, f"expected a JSON object, got {type(obj).__name__}")
            )
            continue
        rows.append((number, obj))
    return _finish(rows, problems, strict)


def read_csv(
    path: str | Path, required: tuple[str, ...], *, strict: bool = False
) -> tuple[list[tuple[int, dict[str, str]]], list[RowProblem]]:
    """Rows of a CSV file with a header; a missing required column is always an error."""
    path = Path(path)
    _check_file(path)
    problems: list[RowProblem] = []
    lines = [text for _, text in _decoded_lines(path, problems)]
    if problems:  # undecodable bytes shift csv line numbers; refuse rather than misreport
        raise DataError("; ".join(str(p) for p in problems[:5]))
    reader = csv.DictReader(lines)
    header = reader.fieldnames or []
    missing = [c for c in required if c not in header]
    if missing:
        raise DataError(
            f"{path}: missing column(s) {', '.join(missing)}; the header has {', '.join(header) or 'nothing'}"
        )
    rows: list[tuple[int, dict[str, str]]] = []
    for row in reader:
        number = reader.line_num
        if None in row:
            problems.append(RowProblem(str(path), number, "more fields than the header"))
            continue
        empty = [c for c in required if not (row.get(c) or "").strip()]
        if empty:
            problems.append(
                RowProblem(str(path), number, f"empty value in column(s) {', '.join(empty)}")
            )
            continue
        rows.append((number, row))
    return _finish(rows, problems, strict)


def _finish(
    rows: list[Any], problems: list[RowProblem], strict: bool
) -> tuple[list[Any], list[RowProblem]]:
    if strict and problems:
        raise DataError(str(problems[0]))
    return rows, problems
