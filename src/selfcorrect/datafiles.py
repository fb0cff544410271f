"""Vendored data files and tolerant row readers shared by the study loaders.

Readers return the good rows *and* a list of `RowProblem`s (file, line, what is wrong), so a study
can report bad rows and carry on; with ``strict=True`` the first problem raises `DataError`.
Nothing read from a data file is ever executed or used as a format string.

What a reader tolerates: a UTF-8 byte order mark, CRLF line ends, U+2028 / U+0085 inside values
(lines are split on ``\\n`` only). What it names as a bad row: invalid UTF-8, a NUL byte, a line
over `MAX_LINE_BYTES`, a CSV field over `MAX_LINE_BYTES` (the ``csv.field_size_limit`` used while
reading), invalid JSON or a JSON value that is not an object. A file with CR-only line ends, or
with no valid row at all (`require_rows`), is a `DataError`.
"""

from __future__ import annotations

import codecs
import csv
import json
from collections.abc import Iterator
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import Any

MAX_LINE_BYTES = 1 << 20  # a data line (or CSV field) over 1 MiB is treated as malformed


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
    with open(path, "rb") as fh:
        head = fh.read(1 << 16)
    if b"\r" in head and b"\n" not in head:
        raise DataError(f"{path}: lines end in CR only; convert the file to LF or CRLF line ends")


def _decoded_lines(path: Path, problems: list[RowProblem]) -> Iterator[tuple[int, str | None]]:
    """``(line number, text)`` per line split on ``\\n``; text None (and a problem) for a bad line."""
    with open(path, "rb") as fh:
        for number, raw in enumerate(fh, start=1):
            if number == 1 and raw.startswith(codecs.BOM_UTF8):
                raw = raw[len(codecs.BOM_UTF8) :]
            problem = None
            if len(raw) > MAX_LINE_BYTES:
                problem = f"line longer than {MAX_LINE_BYTES} bytes"
            elif b"\x00" in raw:
                problem = "contains a NUL byte"
            else:
                try:
                    yield number, raw.decode("utf-8")
                    continue
                except UnicodeDecodeError as exc:
                    problem = f"not valid UTF-8 ({exc.reason})"
            problems.append(RowProblem(str(path), number, problem))
            yield number, None


def read_jsonl(
    path: str | Path, *, strict: bool = False
) -> tuple[list[tuple[int, dict[str, Any]]], list[RowProblem]]:
    """``(line number, object)`` for each good line, and the problems found."""
    path = Path(path)
    _check_file(path)
    rows: list[tuple[int, dict[str, Any]]] = []
    problems: list[RowProblem] = []
    for number, text in _decoded_lines(path, problems):
        if text is None or not text.strip():
            continue
        try:
            obj = json.loads(text)
        except (ValueError, RecursionError) as exc:  # RecursionError: nested too deep
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
    where = [0]  # file line number of the last line the csv reader took

    def lines() -> Iterator[str]:
        for number, text in _decoded_lines(path, problems):
            where[0] = number
            yield "\n" if text is None else text  # a bad line (named) reads as a blank one

    previous_limit = csv.field_size_limit(MAX_LINE_BYTES)
    try:
        reader = csv.DictReader(lines())
        try:
            header = reader.fieldnames or []
        except csv.Error as exc:
            raise DataError(f"{path}:{where[0]}: unreadable CSV header ({exc})") from exc
        if problems and problems[0].line == 1:
            raise DataError(str(problems[0]))
        missing = [c for c in required if c not in header]
        if missing:
            raise DataError(
                f"{path}: missing column(s) {', '.join(missing)}; the header has "
                f"{', '.join(header) or 'nothing'}"
            )
        rows: list[tuple[int, dict[str, str]]] = []
        while True:
            try:
                row = next(reader)
            except StopIteration:
                break
            except csv.Error as exc:
                problems.append(RowProblem(str(path), where[0], f"malformed CSV row ({exc})"))
                continue
            number = where[0]
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
    finally:
        csv.field_size_limit(previous_limit)
    problems.sort(key=lambda p: p.line)
    return _finish(rows, problems, strict)


def require_rows(path: str | Path, n_good: int, problems: list[RowProblem], what: str) -> None:
    """A file that gave no valid row is a `DataError` saying so: how many lines were malformed
    and the first of them."""
    if n_good:
        return
    mine = [p for p in problems if p.path == str(path)]
    if not mine:
        raise DataError(f"{path}: no {what} rows")
    raise DataError(
        f"{path}: no valid {what} row; {len(mine)} malformed line(s), the first: line "
        f"{mine[0].line}: {mine[0].message}"
    )


def _finish(
    rows: list[Any], problems: list[RowProblem], strict: bool
) -> tuple[list[Any], list[RowProblem]]:
    if strict and problems:
        raise DataError(str(problems[0]))
    return rows, problems
