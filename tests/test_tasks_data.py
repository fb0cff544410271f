"""Task loaders: the vendored sets, any JSONL of the documented shape, bad rows and seeded
samples."""

from __future__ import annotations

import json

import pytest

from selfcorrect.datafiles import DataError
from selfcorrect.tasks.data import Fields, load_task, read_items
from selfcorrect.tasks.study import TaskConfig


def _jsonl(path, rows):
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def test_vendored_sets_load_whole():
    gsm, problems = load_task("gsm8k", Fields(), "number")
    assert len(gsm) == 1319 and not problems
    assert gsm[0].answer == "18" and gsm[0].question.startswith("Janet")
    csqa, problems = load_task("csqa", Fields(), "choice")
    assert len(csqa) == 1221 and not problems
    first = csqa[0]
    assert first.labels == ("A", "B", "C", "D", "E") and first.answer == "A"
    assert first.choices[0] == "bank" and first.answer_index == 0


def test_limit_is_a_seeded_sample_in_file_order():
    a, _ = load_task("gsm8k", Fields(), "number", limit=5, seed=0)
    b, _ = load_task("gsm8k", Fields(), "number", limit=5, seed=0)
    c, _ = load_task("gsm8k", Fields(), "number", limit=5, seed=1)
    ids = [x.id for x in a]
    assert ids == [x.id for x in b] and ids != [x.id for x in c]
    lines = [int(i.split("-")[1]) for i in ids]
    assert lines == sorted(lines) and lines != [1, 2, 3, 4, 5]


def test_user_jsonl_of_the_documented_shape(tmp_path):
    path = _jsonl(
        tmp_path / "q.jsonl",
        [
            {"q": "2 + 2?", "a": 4},
            {"q": "Pick the fruit", "a": "B", "opts": ["car", "apple"]},
            {"q": {"stem": "Nested?"}, "a": "yes"},
        ],
    )
    items, problems = read_items(path, Fields("q", "a"), "number")
    assert [i.answer for i in items] == ["4"]
    assert {p.line for p in problems} == {2, 3}  # no number; question not text
    assert "holds no number" in str(problems[0])
    choice, _ = read_items(path, Fields("q", "a", "opts"), "choice")
    assert [(i.id, i.answer, i.choices) for i in choice] == [("line-2", "B", ("car", "apple"))]


def test_options_in_every_documented_form(tmp_path):
    path = _jsonl(
        tmp_path / "c.jsonl",
        [
            {"id": "x", "q": "a", "a": 1, "c": ["no", "yes"]},
            {"id": "y", "q": "b", "a": "yes", "c": {"P": "no", "Q": "yes"}},
            {
                "id": "z",
                "q": "c",
                "a": "Q",
                "c": [{"label": "P", "text": "no"}, {"label": "Q", "text": "yes"}],
            },
            {"id": "z", "q": "d", "a": "A", "c": ["no", "yes"]},
            {"id": "w", "q": "e", "a": "maybe", "c": ["no", "yes"]},
        ],
    )
    items, problems = read_items(path, Fields("q", "a", "c", "id"), "choice")
    assert [(i.id, i.answer) for i in items] == [("x", "B"), ("y", "Q"), ("z", "Q")]
    assert [p.message for p in problems] == [
        "duplicate id 'z'",
        "answer 'maybe' is neither an option label nor an option's text",
    ]


def test_bad_files_give_one_clear_error(tmp_path):
    path = _jsonl(tmp_path / "q.jsonl", [{"question": "x", "answer": "1"}])
    with pytest.raises(
        DataError, match="no row has the field 'q' \\(the first row has: answer, question\\)"
    ):
        read_items(path, Fields("q", "answer"), "text")
    with pytest.raises(DataError, match="no such file"):
        read_items(tmp_path / "missing.jsonl", Fields(), "text")
    broken = _jsonl(tmp_path / "b.jsonl", ["{not json", {"question": "x", "answer": "1"}])
    items, problems = read_items(broken, Fields(), "text")
    assert len(items) == 1 and "invalid JSON" in str(problems[0])


def test_config_errors_name_the_option():
    with pytest.raises(ValueError, match="--scorer is required"):
        TaskConfig(data="mine.jsonl")
    with pytest.raises(ValueError, match="--scorer choice needs --choices-field"):
        TaskConfig(data="mine.jsonl", scorer="choice")
    with pytest.raises(ValueError, match="unknown scorer"):
        TaskConfig(data="gsm8k", scorer="fuzzy")
    with pytest.raises(ValueError, match="--stop oracle needs a check"):
        TaskConfig(check="oracle:0", stop="oracle")
    with pytest.raises(ValueError, match="gsm8k has numeric answers"):
        load_task("gsm8k", Fields(), "choice")
    assert str(TaskConfig(data="csqa").scorer) == "choice"


def test_bad_input_on_the_command_line_is_one_line_and_writes_nothing(tmp_path):
    import subprocess
    import sys

    path = _jsonl(tmp_path / "q.jsonl", [{"question": "x", "answer": "1"}])
    out = tmp_path / "out"
    for args, message in [
        (
            ["--data", str(path), "--question-field", "q", "--scorer", "exact"],
            "no row has the field 'q'",
        ),
        (["--data", str(path)], "--scorer is required"),
        (["--data", str(path), "--scorer", "regex:("], "PATTERN must be a valid Python regular"),
        (["--data", "gsm8k", "--compare", "intrinsic,oracle"], "unknown mode oracle"),
    ]:
        result = subprocess.run(
            [sys.executable, "-m", "selfcorrect", "task", *args, "--out", str(out)],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 2, result.stderr
        assert result.stderr.strip().splitlines() == [result.stderr.strip()]
        assert message in result.stderr and "Traceback" not in result.stderr
    assert not out.exists()
