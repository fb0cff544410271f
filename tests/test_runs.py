"""Run directories: records, resume after a crash, config guard."""

from __future__ import annotations

import json

import pytest

from selfcorrect.runs import RECORDS, RunDir, RunDirError


def _open(path, **config):
    return RunDir.open(path, study="test", config={"a": 1, **config}, model="m", seed=3, argv=["x"])


def test_layout_and_manifest(tmp_path):
    run = _open(tmp_path / "r")
    run.append({"id": "1", "v": 1})
    run.write_json("metrics.json", {"acc": 0.5})
    run.finish(n=1)
    files = {p.name for p in (tmp_path / "r").iterdir()}
    assert {"config.yaml", "manifest.json", RECORDS, "metrics.json"} <= files
    manifest = json.loads((tmp_path / "r" / "manifest.json").read_text())
    assert manifest["model"] == "m" and manifest["seed"] == 3 and manifest["finished"]
    assert "torch" in manifest["versions"] and manifest["versions"]["selfcorrect"]
    assert "command" in (tmp_path / "r" / "config.yaml").read_text()


def test_resume_after_torn_write_loses_and_duplicates_nothing(tmp_path):
    run = _open(tmp_path / "r")
    for i in range(3):
        run.append({"id": str(i)})
    with open(tmp_path / "r" / RECORDS, "ab") as fh:  # a kill in the middle of a write
        fh.write(b'{"id": "3", "half')
    run = _open(tmp_path / "r")
    assert run.finished_ids() == {"0", "1", "2"}
    run.append({"id": "3"})
    ids = [r["id"] for r in run.records()]
    assert ids == ["0", "1", "2", "3"]
    assert json.loads(run.path.joinpath("manifest.json").read_text())["resumed"]


def test_corrupt_line_in_the_middle_is_an_error(tmp_path):
    run = _open(tmp_path / "r")
    run.append({"id": "0"})
    with open(tmp_path / "r" / RECORDS, "ab") as fh:
        fh.write(b"garbage\n")
    run.append({"id": "1"})
    with pytest.raises(RunDirError, match=r"records.jsonl:2"):
        run.records()


def test_refuses_to_resume_with_another_config(tmp_path):
    _open(tmp_path / "r")
    with pytest.raises(RunDirError, match="differs in: a"):
        _open(tmp_path / "r", a=2)


def test_failures_are_kept_apart(tmp_path):
    run = _open(tmp_path / "r")
    run.append({"id": "0", "error": "boom"}, failed=True)
    assert run.records() == [] and run.failures()[0]["error"] == "boom"


def test_torn_failure_line_is_repaired_too(tmp_path):
    run = _open(tmp_path / "r")
    run.append({"id": "0", "error": "x"}, failed=True)
    with open(tmp_path / "r" / "failures.jsonl", "ab") as fh:
        fh.write(b'{"id": "1", "err')
    run = _open(tmp_path / "r")
    run.append({"id": "2", "error": "y"}, failed=True)
    assert [f["id"] for f in run.failures()] == ["0", "2"]
