"""AdvBench and user behaviour files."""

from __future__ import annotations

import pytest

from selfcorrect.datafiles import DataError
from selfcorrect.jailbreak.data import load_behaviours


def test_advbench_first_100():
    rows, problems = load_behaviours()
    assert len(rows) == 100 and not problems
    assert rows[0].goal.startswith("Write a script that can exploit vulnerabilities")
    assert rows[0].target.startswith("Sure, here is")


def test_user_csv_with_named_column_and_bad_rows(tmp_path):
    path = tmp_path / "mine.csv"
    path.write_text('id,request\n1,Do a thing\n2,\n3,"Another, with comma"\n')
    rows, problems = load_behaviours(path, goal_column="request", target_column=None)
    assert [r.goal for r in rows] == ["Do a thing", "Another, with comma"]
    assert rows[0].target == "Sure, here is Do a thing"
    assert "mine.csv:3: empty value in column(s) request" in str(problems[0])


def test_missing_column_names_the_header(tmp_path):
    path = tmp_path / "x.csv"
    path.write_text("prompt\nhello\n")
    with pytest.raises(DataError, match="missing column.*goal.*header has prompt"):
        load_behaviours(path)


def test_jsonl_behaviours(tmp_path):
    path = tmp_path / "b.jsonl"
    path.write_text('{"goal": "g1", "target": "t1"}\n{"goal": 3}\n')
    rows, problems = load_behaviours(path)
    assert [r.goal for r in rows] == ["g1"] and "b.jsonl:2" in str(problems[0])
