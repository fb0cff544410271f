"""BBQ loading: vendored sources, filters, sampling, malformed rows, biased answers."""

from __future__ import annotations

import json

import pytest

from selfcorrect.bbq.data import load_bbq, parse_example
from selfcorrect.datafiles import DataError


def test_paper_subset_is_1100_ambiguous_questions():
    examples, problems = load_bbq("paper")
    assert len(examples) == 1100 and not problems
    assert {e.context_condition for e in examples} == {"ambig"}
    assert all(e.label == e.unknown_index for e in examples)  # ambiguous: "unknown" is right


def test_full_release_has_both_conditions_and_biased_answers():
    examples, _ = load_bbq("full", categories=["Religion"])
    assert {e.context_condition for e in examples} == {"ambig", "disambig"}
    assert all(e.biased_index is not None and e.biased_index != e.unknown_index for e in examples)


def test_sampling_is_deterministic_and_per_category():
    a, _ = load_bbq("paper", categories=["Age", "SES"], limit_per_category=5, seed=1)
    b, _ = load_bbq("paper", categories=["Age", "SES"], limit_per_category=5, seed=1)
    c, _ = load_bbq("paper", categories=["Age", "SES"], limit_per_category=5, seed=2)
    assert [e.uid for e in a] == [e.uid for e in b] != [e.uid for e in c]
    assert sum(e.category == "Age" for e in a) == 5 and len(a) == 10


def test_biased_answer_follows_polarity():
    row = json.loads(
        '{"example_id": 1, "question_polarity": "neg", "context_condition": "ambig", "category": "Age",'
        ' "answer_info": {"ans0": ["grandfather", "old"], "ans1": ["grandson", "nonOld"], "ans2": ["Unknown", "unknown"]},'
        ' "additional_metadata": {"stereotyped_groups": ["old"]}, "context": "c", "question": "q",'
        ' "ans0": "The grandfather", "ans1": "The grandson", "ans2": "Unknown", "label": 2}'
    )
    assert parse_example(row).biased_index == 0
    assert parse_example({**row, "question_polarity": "nonneg"}).biased_index == 1


def test_malformed_rows_are_reported_not_fatal(tmp_path):
    good = json.loads(
        open(load_bbq.__globals__["vendored"]("bbq", "paper_subset", "Age.jsonl")).readline()
    )
    lines = [
        json.dumps(good),
        "{not json",
        json.dumps({**good, "example_id": 99, "label": 7}),
        json.dumps({k: v for k, v in good.items() if k != "question"} | {"example_id": 98}),
        "[1, 2]",
    ]
    path = tmp_path / "bad.jsonl"
    path.write_bytes("\n".join(lines).encode() + b"\n\xff\xfe broken\n")
    examples, problems = load_bbq(path)
    assert len(examples) == 1
    text = "\n".join(str(p) for p in problems)
    for line, what in [
        (2, "invalid JSON"),
        (3, "label must be"),
        (4, "missing field(s) question"),
        (5, "expected a JSON object"),
        (6, "not valid UTF-8"),
    ]:
        assert f"bad.jsonl:{line}: {what}" in text
    with pytest.raises(DataError, match="bad.jsonl:2"):
        load_bbq(path, strict=True)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"categories": ["Nope"]}, "unknown BBQ category Nope"),
        ({"conditions": ["vague"]}, "unknown context condition"),
        ({"limit_per_category": 0}, "limit per category must be >= 1"),
    ],
)
def test_bad_options_are_clear(kwargs, message):
    with pytest.raises(DataError, match=message):
        load_bbq("paper", **kwargs)


def test_missing_and_empty_files(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        load_bbq(tmp_path / "nope.jsonl")
    (tmp_path / "empty.jsonl").write_text("")
    with pytest.raises(DataError, match="file is empty"):
        load_bbq(tmp_path / "empty.jsonl")
