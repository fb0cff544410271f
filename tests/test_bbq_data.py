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


def _good_row():
    from selfcorrect.datafiles import vendored

    with open(vendored("bbq", "paper_subset", "Age.jsonl"), encoding="utf-8") as fh:
        return json.loads(fh.readline())


@pytest.mark.parametrize(
    "change, message",
    [
        ({"example_id": [1]}, "example_id must be a whole number"),
        ({"example_id": True}, "example_id must be a whole number"),
        ({"answer_info": {"ans0": [1, 2], "ans1": [3, 4], "ans2": [5, 6]}}, "answer_info must"),
        ({"answer_info": ["ans0"]}, "answer_info must"),
        (
            {"additional_metadata": ["old"]},
            "additional_metadata.stereotyped_groups must be a list of strings",
        ),
        (
            {"additional_metadata": {"stereotyped_groups": "old"}},
            "additional_metadata.stereotyped_groups must",
        ),
        (
            {"additional_metadata": {"stereotyped_groups": [1]}},
            "additional_metadata.stereotyped_groups must",
        ),
        ({"question_polarity": ["neg"]}, "question_polarity must be"),
        ({"context": {"a": 1}}, "context must be a non-empty string"),
        ({"label": "2"}, "label must be 0, 1 or 2"),
    ],
)
def test_wrong_json_types_are_named_rows_not_crashes(tmp_path, change, message):
    good = _good_row()
    path = tmp_path / "types.jsonl"
    path.write_text(
        json.dumps(good) + "\n" + json.dumps({**good, "example_id": 9, **change}) + "\n"
    )
    examples, problems = load_bbq(path)
    assert len(examples) == 1 and len(problems) == 1
    assert f"types.jsonl:2: {message}" in str(problems[0])


def test_bom_crlf_and_line_separators_inside_values(tmp_path):
    good = _good_row()
    odd = {**good, "example_id": 7, "context": good["context"] + " \u2028 and \u0085 too"}
    path = tmp_path / "bom.jsonl"
    text = json.dumps(good, ensure_ascii=False) + "\r\n" + json.dumps(odd, ensure_ascii=False)
    path.write_bytes(b"\xef\xbb\xbf" + text.encode("utf-8") + b"\r\n")
    examples, problems = load_bbq(path)
    assert not problems and len(examples) == 2  # the first row survives the BOM
    assert examples[1].context.endswith(" \u2028 and \u0085 too")


def test_nul_and_huge_lines_are_named(tmp_path):
    good = json.dumps(_good_row())
    path = tmp_path / "nul.jsonl"
    path.write_bytes(
        good.encode() + b"\n" + b'{"a": "\x00"}\n' + b'{"a": "' + b"x" * (2 << 20) + b'"}\n'
    )
    examples, problems = load_bbq(path)
    assert len(examples) == 1
    assert [str(p).split(": ", 1)[1] for p in problems] == [
        "contains a NUL byte",
        "line longer than 1048576 bytes",
    ]


def test_a_file_with_no_valid_row_says_so(tmp_path):
    path = tmp_path / "junk.jsonl"
    path.write_text("{not json\n[1]\n" + json.dumps({"example_id": 1}) + "\n")
    with pytest.raises(DataError) as err:
        load_bbq(path)
    text = str(err.value)
    assert text.startswith(f"{path}: no valid BBQ row; 3 malformed line(s), the first: line 1:")
    assert "invalid JSON" in text and "\n" not in text


def test_cr_only_line_ends_are_named(tmp_path):
    path = tmp_path / "mac.jsonl"
    path.write_bytes(json.dumps(_good_row()).encode() + b"\r" + b"{}\r")
    with pytest.raises(DataError, match="lines end in CR only"):
        load_bbq(path)


def test_data_with_braces_is_put_in_literally_never_read_as_a_template():
    from selfcorrect.bbq.prompts import question_text

    row = json.loads(
        '{"example_id": 1, "question_polarity": "neg", "context_condition": "ambig", "category": "Age",'
        ' "answer_info": {"ans0": ["a", "old"], "ans1": ["b", "nonOld"], "ans2": ["c", "unknown"]},'
        ' "additional_metadata": {"stereotyped_groups": ["old"]}, "context": "The sign said {question} {ans0}.",'
        ' "question": "Who {ans1}?", "ans0": "A", "ans1": "B", "ans2": "C", "label": 2}'
    )
    text = question_text(parse_example(row))
    assert "The sign said {question} {ans0}." in text and "Who {ans1}?" in text
