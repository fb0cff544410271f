"""Scorers: is an answer right? Pure functions of (answer text, question), plus one that asks a
model.

Every scorer returns a `Score`: what it read from the answer (`extracted`, the value a
self-consistency vote counts) and whether that is the gold answer. An answer a scorer cannot
read (no number, no option, no match, a grader reply that is neither "correct" nor
"incorrect") has ``extracted=None`` and counts as wrong; the study reports its share as the
*unscored* rate (as the BBQ study reports unparsed answers).

The answer text given to a scorer is what follows the answer cue (``The answer is``), so the
readers take the *first* candidate: the first number, the first option marker, the first match
(Kojima et al. 2022 read the first number after their answer trigger in zero-shot answers).

- `score_exact`: SQuAD-style normalised text of the answer's first line/sentence equals the
  normalised gold (Rajpurkar et al. 2016: lower case, no punctuation, no articles);
- `score_numeric`: the first number (``1,234.5``, ``-3``, ``$18``; a ``\\boxed{}`` number takes
  precedence) equals the gold number exactly as a decimal;
- `score_choice`: the first option marker (``(B)``, ``B)``, ``B.``, a bare ``B``, "answer is B",
  "option B"), else the option whose text appears first; it equals the gold label;
- `score_regex`: the first match of a pattern (group 1 if the pattern has groups), normalised,
  equals the normalised gold;
- `LLMScorer`: a model is asked `LLM_GRADER_PROMPT` and must reply exactly "correct" or
  "incorrect".
"""

from __future__ import annotations

import re
import string
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Protocol

from selfcorrect.fill import fill
from selfcorrect.specs import Spec, parse
from selfcorrect.tasks.data import AnswerKind, TaskItem, canonical_number
from selfcorrect.tasks.prompts import ANSWER_CUE, LLM_GRADER_PROMPT, LLM_GRADER_TOKENS

if TYPE_CHECKING:
    from selfcorrect.backends.base import Backend


@dataclass(frozen=True)
class Score:
    """What a scorer read from an answer (None: nothing it could score) and whether it is right.
    An unscored answer is never right."""

    extracted: str | None
    correct: bool

    @property
    def scored(self) -> bool:
        return self.extracted is not None


UNSCORED = Score(None, False)


def strip_cue(text: str, cue: str = ANSWER_CUE) -> str:
    """The answer after its leading cue (the prefill), with surrounding space and a colon."""
    body = text.lstrip()
    if cue and body.startswith(cue):
        body = body[len(cue) :]
    return body.strip().lstrip(":").strip()


_ARTICLES = re.compile(r"\b(a|an|the)\b")


def normalize_text(text: str) -> str:
    """SQuAD v1.1's answer normalisation (Rajpurkar et al. 2016, the official evaluation
    script's ``normalize_answer``): lower case, punctuation removed, articles removed,
    whitespace collapsed."""
    text = text.lower()
    text = "".join(ch for ch in text if ch not in string.punctuation)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def first_statement(text: str) -> str:
    """The answer up to its first line break or sentence end (". " or a final period)."""
    line = text.strip().split("\n", 1)[0]
    return re.split(r"(?<=[^\s\d])\.(?:\s|$)", line, maxsplit=1)[0].strip()


def score_exact(text: str, item: TaskItem) -> Score:
    """Exact match after SQuAD normalisation of the answer's first statement (line or
    sentence). An empty answer is unscored."""
    said = normalize_text(first_statement(text))
    if not said:
        return UNSCORED
    return Score(said, said == normalize_text(item.answer))


_BOXED = re.compile(r"\\boxed\{([^{}]*)\}")


def read_number(text: str) -> str | None:
    """The number an answer gives, canonical (`canonical_number`): the one in the first
    ``\\boxed{...}`` if there is one, else the first number in the text; None without one."""
    boxed = _BOXED.search(text)
    if boxed is not None:
        inside = canonical_number(boxed.group(1))
        if inside is not None:
            return inside
    return canonical_number(text)


def score_numeric(text: str, item: TaskItem) -> Score:
    """The first number of the answer (`read_number`) equals the gold number (compared as
    decimals, so "18.0" is 18). No number: unscored."""
    said = read_number(text)
    if said is None:
        return UNSCORED
    try:
        right = Decimal(said) == Decimal(item.answer)
    except InvalidOperation:
        right = False
    return Score(said, right)


def _letter_pattern(labels: Sequence[str]) -> re.Pattern[str]:
    """Option markers; a bare label or "answer is B" matches in the label's own case (a lower-case
    "a" is an article), "(b)" and "b)" in either case."""
    alts = "|".join(re.escape(label) for label in sorted(labels, key=len, reverse=True))
    return re.compile(
        rf"\(((?i:{alts}))\)"  # (B) or (b)
        rf"|(?i:answer|option|choice)\s*(?:is|:)?\s*\(?({alts})\b(?!')"  # answer is B, option B
        rf"|^\s*({alts})(?:[).:,]|\s*$)"  # B) / B. / B: / a bare B at the start
        rf"|(?<![\w'])((?i:{alts}))\)"  # ... B) or b)
    )


def read_choice(text: str, labels: Sequence[str], options: Sequence[str]) -> str | None:
    """The label of the option an answer names: its first option marker, else the option whose
    text (SQuAD-normalised, on word boundaries) appears first; None when it names none."""
    if not text.strip():
        return None
    match = _letter_pattern(labels).search(text)
    if match is not None:
        said = next(g for g in match.groups() if g)
        return next(label for label in labels if label.upper() == said.upper())
    norm = f" {normalize_text(text)} "
    hits = []
    for label, option in zip(labels, options, strict=True):
        key = normalize_text(option)
        if key and (pos := norm.find(f" {key} ")) >= 0:
            hits.append((pos, -len(key), label))
    return min(hits)[2] if hits else None


def score_choice(text: str, item: TaskItem) -> Score:
    """The option the answer names (`read_choice`) is the gold option. None named: unscored."""
    said = read_choice(text, item.labels, item.choices)
    if said is None:
        return UNSCORED
    return Score(said, said == item.answer)


def score_regex(text: str, item: TaskItem, pattern: str) -> Score:
    """The first match of `pattern` in the answer (its group 1 if it has groups), normalised,
    equals the normalised gold. No match: unscored."""
    match = re.search(pattern, text)
    if match is None:
        return UNSCORED
    said = normalize_text(match.group(1) if match.re.groups else match.group(0))
    if not said:
        return UNSCORED
    return Score(said, said == normalize_text(item.answer))


def parse_grade(reply: str) -> bool | None:
    """The LLM grader's reply, read strictly: exactly "correct" (True) or "incorrect" (False),
    ignoring case, surrounding space and one final period; anything else is None."""
    word = reply.strip().lower()
    if word.endswith("."):
        word = word[:-1]
    return {"correct": True, "incorrect": False}.get(word)


def reference_text(item: TaskItem) -> str:
    """The gold answer as a grader reads it: "(B) library" for an option, else the answer."""
    if item.answer_index is not None:
        return f"({item.answer}) {item.choices[item.answer_index]}"
    return item.answer


class Scorer(Protocol):
    """Scores a batch of (answer text after the cue, question) pairs, in order."""

    @property
    def name(self) -> str: ...

    @property
    def kind(self) -> AnswerKind: ...

    def score(self, pairs: Sequence[tuple[str, TaskItem]]) -> list[Score]: ...


@dataclass(frozen=True)
class PureScorer:
    """One of the pure scorers above (`pattern` for regex)."""

    name: str
    kind: AnswerKind
    pattern: str | None = None

    def score(self, pairs: Sequence[tuple[str, TaskItem]]) -> list[Score]:
        if self.name == "numeric":
            return [score_numeric(t, item) for t, item in pairs]
        if self.name == "choice":
            return [score_choice(t, item) for t, item in pairs]
        if self.name == "regex":
            assert self.pattern is not None
            return [score_regex(t, item, self.pattern) for t, item in pairs]
        return [score_exact(t, item) for t, item in pairs]


@dataclass(frozen=True)
class LLMScorer:
    """A model grades each answer against the reference with `LLM_GRADER_PROMPT` (greedy,
    `LLM_GRADER_TOKENS` new tokens); the reply is read by `parse_grade`. `extracted` is the
    answer's normalised first statement (what a self-consistency vote counts)."""

    grader: Backend
    name: str = "llm"
    kind: AnswerKind = "text"

    def score(self, pairs: Sequence[tuple[str, TaskItem]]) -> list[Score]:
        from selfcorrect.backends.base import GenParams, Message

        if not pairs:
            return []
        chats = [
            (
                Message(
                    "user",
                    fill(
                        LLM_GRADER_PROMPT,
                        question=item.question,
                        reference=reference_text(item),
                        answer=text,
                    ),
                ),
            )
            for text, item in pairs
        ]
        replies = self.grader.generate(chats, GenParams(max_new_tokens=LLM_GRADER_TOKENS))
        out = []
        for (text, _), reply in zip(pairs, replies, strict=True):
            grade = None if reply.error else parse_grade(reply.text)
            said = normalize_text(first_statement(text))
            out.append(UNSCORED if grade is None or not said else Score(said, grade))
        return out


KINDS: dict[str, AnswerKind] = {
    "exact": "text",
    "numeric": "number",
    "choice": "choice",
    "regex": "text",
    "llm": "text",
}


def make_scorer(spec: str | Spec, **grader_options: object) -> Scorer:
    """A scorer from its spec: ``exact``, ``numeric``, ``choice``, ``regex:PATTERN`` or
    ``llm:SPEC`` (the grader model; `grader_options` go to `get_backend`)."""
    parsed = parse("scorer", spec)
    if parsed.kind == "llm":
        from selfcorrect.backends.base import get_backend

        return LLMScorer(get_backend(str(parsed.value), **grader_options))
    return PureScorer(parsed.kind, KINDS[parsed.kind], parsed.value if parsed.arg else None)
