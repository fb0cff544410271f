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


def test_csv_with_a_bom_and_crlf_keeps_its_header(tmp_path):
    path = tmp_path / "bom.csv"
    path.write_bytes(b"\xef\xbb\xbfgoal,target\r\nDo A,Sure A\r\nDo B,Sure B\r\n")
    rows, problems = load_behaviours(path)
    assert [(r.goal, r.target) for r in rows] == [("Do A", "Sure A"), ("Do B", "Sure B")]
    assert not problems


def test_csv_fields_up_to_the_stated_limit_and_over_it(tmp_path):
    from selfcorrect.datafiles import MAX_LINE_BYTES

    big = "y" * (200 * 1024)  # over csv's default 128 KiB field limit, under ours
    huge = "z" * (MAX_LINE_BYTES + 10)
    path = tmp_path / "big.csv"
    path.write_text(
        f'goal,target\n"{big}",t1\n"multi\n{huge[:600_000]}\n{huge[:600_000]}",t2\nlast,t3\n'
    )
    rows, problems = load_behaviours(path)
    assert [r.goal[:4] for r in rows] == ["yyyy", "last"] and len(rows[0].goal) == len(big)
    assert len(problems) == 1 and "big.csv:" in str(problems[0])
    assert "field larger than field limit (1048576)" in str(problems[0])
    import csv

    assert csv.field_size_limit() == 131072  # the process-wide limit is restored


def test_nul_and_bad_utf8_in_csv_are_named_rows(tmp_path):
    path = tmp_path / "nul.csv"
    path.write_bytes(b"goal,target\nok,t\nbad\x00row,t\n\xff\xfe,t\nfine,t\n")
    rows, problems = load_behaviours(path)
    assert [r.goal for r in rows] == ["ok", "fine"]
    assert [str(p) for p in problems] == [
        f"{path}:3: contains a NUL byte",
        f"{path}:4: not valid UTF-8 (invalid start byte)",
    ]


def test_a_behaviours_file_with_no_valid_row_says_so(tmp_path):
    path = tmp_path / "none.jsonl"
    path.write_text('{"goal": 3}\n{"goal": ""}\n')
    with pytest.raises(DataError, match=r"none.jsonl: no valid behaviour row; 2 malformed line"):
        load_behaviours(path)
