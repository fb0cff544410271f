"""Task questions from any JSONL file, or from the vendored GSM8K and CommonsenseQA files.

A `TaskItem` is one question with its gold answer (and options, for multiple choice). Fields are
named by the caller (``--question-field``, ``--answer-field``, ``--choices-field``); a dotted name
reads a nested field (``question.stem``). Rows that cannot be used are reported as `RowProblem`s
(file and line) and skipped; a field that no row has is an error naming the fields the file has.

Built-in sets (vendored, see ``data/ATTRIBUTION.md``):

- ``gsm8k``: the 1,319 GSM8K test problems; the gold answer is the number after ``####`` at the
  end of the worked solution (Cobbe et al. 2021), thousands separators removed;
- ``csqa``: the 1,221 CommonsenseQA dev questions (random split), five lettered options, the
  gold answer their ``answerKey`` (Talmor et al. 2019).

``limit`` takes a seeded random sample of that many questions (``random.Random(seed)``), kept in
file order; without it every question is used.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from selfcorrect.datafiles import DataError, RowProblem, read_jsonl, vendored

AnswerKind = Literal["text", "number", "choice"]
BUILTIN = ("gsm8k", "csqa")
LABELS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_NUMBER = re.compile(r"-?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|-?\.\d+")


@dataclass(frozen=True)
class TaskItem:
    """One question: `answer` is the gold answer as text (a canonical number for numeric
    tasks, the option's label for multiple choice); `choices` and `labels` list the options."""

    id: str
    question: str
    answer: str
    choices: tuple[str, ...] = ()
    labels: tuple[str, ...] = ()

    @property
    def answer_index(self) -> int | None:
        """Index of the gold option (multiple choice), else None."""
        return self.labels.index(self.answer) if self.answer in self.labels else None


@dataclass(frozen=True)
class Fields:
    """Which fields of a JSONL row hold the question, the gold answer, the options and the id."""

    question: str = "question"
    answer: str = "answer"
    choices: str | None = None
    id: str | None = None


def canonical_number(text: str) -> str | None:
    """The first number in `text` written canonically (no thousands separators, no trailing
    zeros: ``"1,234.50"`` -> ``"1234.5"``, ``"-3.0"`` -> ``"-3"``); None without one."""
    match = _NUMBER.search(text)
    if match is None:
        return None
    raw = match.group(0).replace(",", "")
    from decimal import Decimal, InvalidOperation

    try:
        value = Decimal(raw)
    except InvalidOperation:
        return None
    out = format(value.normalize(), "f")
    return "0" if out in ("-0", "0") else out


def gsm8k_gold(solution: str) -> str | None:
    """GSM8K's gold answer: the number after the last ``####`` of the worked solution."""
    _, sep, tail = solution.rpartition("####")
    return canonical_number(tail) if sep else None


def _get(row: dict[str, Any], name: str) -> Any:
    value: Any = row
    for part in name.split("."):
        if not isinstance(value, dict) or part not in value:
            raise KeyError(name)
        value = value[part]
    return value


def _options(value: Any) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(labels, texts) of the options: a list of strings (labelled A, B, ...), a list of
    ``{"label", "text"}`` objects, or a ``{label: text}`` object."""
    if isinstance(value, dict):
        pairs = [(str(k), v) for k, v in value.items()]
    elif isinstance(value, list) and all(isinstance(v, dict) for v in value):
        pairs = [(str(v.get("label", "")), v.get("text")) for v in value]
    elif isinstance(value, list):
        if len(value) > len(LABELS):
            raise ValueError(f"more than {len(LABELS)} options")
        pairs = [(LABELS[i], v) for i, v in enumerate(value)]
    else:
        raise ValueError(f"options must be a list or an object, got {type(value).__name__}")
    if len(pairs) < 2:
        raise ValueError("fewer than 2 options")
    if any(not isinstance(t, str) or not t.strip() for _, t in pairs):
        raise ValueError("every option must be non-empty text")
    labels = tuple(label.strip() for label, _ in pairs)
    if any(not label for label in labels) or len(set(labels)) != len(labels):
        raise ValueError("option labels must be non-empty and distinct")
    return labels, tuple(str(t).strip() for _, t in pairs)


def _gold_choice(value: Any, labels: tuple[str, ...], texts: tuple[str, ...]) -> str:
    """The gold option's label from a label (``"B"``), a 0-based index or the option's text."""
    if isinstance(value, bool):
        raise ValueError("the answer must be a label, an index or an option's text")
    if isinstance(value, int):
        if not 0 <= value < len(labels):
            raise ValueError(f"answer index {value} is not one of the {len(labels)} options")
        return labels[value]
    if isinstance(value, str):
        text = value.strip()
        for i, label in enumerate(labels):
            if text.upper() == label.upper():
                return labels[i]
        for i, option in enumerate(texts):
            if text.casefold() == option.casefold():
                return labels[i]
        raise ValueError(f"answer {text!r} is neither an option label nor an option's text")
    raise ValueError(f"the answer must be text or a whole number, got {type(value).__name__}")


def _item(
    row: dict[str, Any], line: int, fields: Fields, kind: AnswerKind, default_id: str
) -> TaskItem:
    question = _get(row, fields.question)
    if not isinstance(question, str) or not question.strip():
        raise ValueError(f"field {fields.question!r} must be non-empty text")
    raw = _get(row, fields.answer)
    item_id = str(_get(row, fields.id)) if fields.id else default_id
    labels: tuple[str, ...] = ()
    texts: tuple[str, ...] = ()
    if fields.choices:
        labels, texts = _options(_get(row, fields.choices))
    if kind == "choice":
        if not fields.choices:
            raise ValueError("multiple choice needs an options field (--choices-field)")
        answer = _gold_choice(raw, labels, texts)
    else:
        if isinstance(raw, bool) or not isinstance(raw, (str, int, float)):
            raise ValueError(f"field {fields.answer!r} must be text or a number")
        answer = str(raw).strip()
        if kind == "number":
            number = canonical_number(answer)
            if number is None:
                raise ValueError(f"field {fields.answer!r} holds no number: {answer[:40]!r}")
            answer = number
        if not answer:
            raise ValueError(f"field {fields.answer!r} is empty")
    return TaskItem(item_id, question.strip(), answer, texts, labels)


def read_items(
    path: str | Path, fields: Fields, kind: AnswerKind, *, id_prefix: str = "line-"
) -> tuple[list[TaskItem], list[RowProblem]]:
    """Every usable row of a JSONL file as a `TaskItem`, and the rows that were not usable."""
    rows, problems = read_jsonl(path)
    if not rows:
        raise DataError(f"{path}: no JSON object rows")
    for name in (fields.question, fields.answer, fields.choices, fields.id):
        if name and all(_missing(row, name) for _, row in rows):
            seen = ", ".join(sorted(rows[0][1])) or "none"
            raise DataError(f"{path}: no row has the field {name!r} (the first row has: {seen})")
    items: list[TaskItem] = []
    ids: set[str] = set()
    for line, row in rows:
        try:
            item = _item(row, line, fields, kind, f"{id_prefix}{line}")
        except KeyError as exc:
            problems.append(RowProblem(str(path), line, f"missing field {exc.args[0]!r}"))
            continue
        except ValueError as exc:
            problems.append(RowProblem(str(path), line, str(exc)))
            continue
        if item.id in ids:
            problems.append(RowProblem(str(path), line, f"duplicate id {item.id!r}"))
            continue
        ids.add(item.id)
        items.append(item)
    return items, problems


def _missing(row: dict[str, Any], name: str) -> bool:
    try:
        _get(row, name)
    except KeyError:
        return True
    return False


def load_gsm8k() -> tuple[list[TaskItem], list[RowProblem]]:
    """The vendored GSM8K test set; gold answers read after ``####``."""
    path = vendored("gsm8k", "test.jsonl")
    rows, problems = read_jsonl(path)
    items = []
    for line, row in rows:
        question, solution = row.get("question"), row.get("answer")
        gold = gsm8k_gold(solution) if isinstance(solution, str) else None
        if not isinstance(question, str) or gold is None:
            problems.append(RowProblem(str(path), line, "no question or no '####' answer"))
            continue
        items.append(TaskItem(f"gsm8k-{line}", question.strip(), gold))
    return items, problems


def load_csqa() -> tuple[list[TaskItem], list[RowProblem]]:
    """The vendored CommonsenseQA dev set (random split)."""
    fields = Fields(
        question="question.stem", answer="answerKey", choices="question.choices", id="id"
    )
    return read_items(vendored("commonsenseqa", "dev_rand_split.jsonl"), fields, "choice")


def load_task(
    source: str,
    fields: Fields,
    kind: AnswerKind,
    *,
    limit: int | None = None,
    seed: int = 0,
) -> tuple[list[TaskItem], list[RowProblem]]:
    """Questions of `source` (``gsm8k``, ``csqa`` or a JSONL path), optionally a seeded sample
    of `limit` of them in file order, and the rows that could not be used."""
    if source == "gsm8k":
        if kind == "choice":
            raise ValueError(
                "gsm8k has numeric answers; use --scorer numeric (or exact, regex, llm)"
            )
        items, problems = load_gsm8k()
    elif source == "csqa":
        if kind == "number":
            raise ValueError("csqa is multiple choice; use --scorer choice (or exact, regex, llm)")
        items, problems = load_csqa()
    else:
        items, problems = read_items(source, fields, kind)
    if limit is not None:
        if limit < 1:
            raise ValueError(f"--limit must be >= 1, got {limit}")
        if limit < len(items):
            keep = sorted(random.Random(seed).sample(range(len(items)), limit))
            items = [items[i] for i in keep]
    return items, problems
