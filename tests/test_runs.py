"""Run directories: records, resume after a crash, one writer, fingerprinted resume, readers."""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import signal
import subprocess
import sys

import pytest

from selfcorrect.runs import LOCK, RECORDS, RunDir, RunDirError, RunLockedError, read_records


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


# --- one writer ---------------------------------------------------------------------------------

HOLDER = """
import sys
from selfcorrect.runs import RunDir
run = RunDir.open(sys.argv[1], study="test", config={"a": 1}, argv=["x"])
run.append({"id": "held"})
print("ready", flush=True)
sys.stdin.read()
"""


@contextlib.contextmanager
def _holder(path):
    """A real second process that opens `path` as a run and keeps it open until stdin closes."""
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout.readline().strip() == "ready", proc.stderr.read()
        yield proc
    finally:
        if proc.poll() is None:
            proc.stdin.close()
            proc.wait(timeout=60)


def test_a_second_writer_process_is_refused_naming_the_directory_and_pid(tmp_path):
    with _holder(tmp_path / "r") as proc:
        with pytest.raises(RunLockedError) as err:
            _open(tmp_path / "r")
        assert err.value.pid == proc.pid
        assert str(tmp_path / "r") in str(err.value) and f"process {proc.pid}" in str(err.value)
        assert "\n" not in str(err.value)
    run = _open(tmp_path / "r")  # the holder exited: the lock is free again
    assert run.finished_ids() == {"held"}


def test_a_lock_left_by_a_killed_process_does_not_block(tmp_path):
    with _holder(tmp_path / "r") as proc:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
    assert (tmp_path / "r" / LOCK).read_text().strip() == str(proc.pid)  # its PID is still there
    run = _open(tmp_path / "r")
    assert run.finished_ids() == {"held"}
    assert (tmp_path / "r" / LOCK).read_text().strip() == str(os.getpid())


def test_finish_releases_the_lock_and_closes_the_run(tmp_path):
    run = _open(tmp_path / "r")
    probe = [sys.executable, "-c", HOLDER, str(tmp_path / "r")]
    refused = subprocess.run(probe, input="", capture_output=True, text=True, timeout=60)
    assert refused.returncode != 0 and "RunLockedError" in refused.stderr
    run.finish(n=0)
    assert run.closed
    with pytest.raises(RunDirError, match="closed"):
        run.append({"id": "late"})
    ok = subprocess.run(probe, input="", capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0, ok.stderr


def test_reopening_in_the_same_process_shares_the_lock(tmp_path):
    first = _open(tmp_path / "r")
    second = _open(tmp_path / "r")
    first.close()
    second.append({"id": "0"})  # still the writer
    second.close()
    assert [r["id"] for r in _open(tmp_path / "r").records()] == ["0"]


def test_duplicate_records_are_read_once_and_reported(tmp_path, caplog):
    run = _open(tmp_path / "r")
    for i in (0, 1, 0, 2, 1):
        run.append({"id": str(i), "n": i})
    assert [r["id"] for r in run.records()] == ["0", "1", "2"]
    with caplog.at_level(logging.WARNING, logger="selfcorrect.runs"):
        again = _open(tmp_path / "r")
    assert again.duplicates == 2
    assert "2 duplicate record(s) ignored" in caplog.text and "records.jsonl" in caplog.text


# --- fingerprint ----------------------------------------------------------------------------------


def _open_with(path, data, **inputs):
    return RunDir.open(
        path, study="test", config={"a": 1}, argv=["x"], inputs={"data": data, **inputs}
    )


def test_resume_after_editing_the_data_file_is_refused_naming_it(tmp_path):
    data = tmp_path / "mine.jsonl"
    data.write_text('{"q": "one"}\n')
    run = _open_with(tmp_path / "r", data)
    run.append({"id": "0"})
    run.close()
    data.write_text('{"q": "One"}\n')  # same size, one byte differs
    with pytest.raises(RunDirError, match=r"different inputs \(data: .*mine\.jsonl"):
        _open_with(tmp_path / "r", data)
    data.write_text('{"q": "one"}\n')  # back to the original content: same run again
    assert _open_with(tmp_path / "r", data).finished_ids() == {"0"}


def test_edited_inputs_are_refused_by_the_records_alone(tmp_path):
    """With config.yaml and manifest.json gone, the records' fingerprints still hold the
    inputs: an edited data file cannot resume into them, failed records included."""
    data = tmp_path / "mine.jsonl"
    data.write_text('{"q": "one"}\n')
    run = _open_with(tmp_path / "r", data)
    run.append({"id": "0"})
    run.append({"id": "1", "error": "x"}, failed=True)
    run.close()
    (tmp_path / "r" / "config.yaml").unlink()
    (tmp_path / "r" / "manifest.json").unlink()
    data.write_text('{"q": "One"}\n')
    with pytest.raises(RunDirError, match=r"record\(s\) of another configuration or other inputs"):
        _open_with(tmp_path / "r", data)
    (tmp_path / "r" / RECORDS).unlink()  # only the failures are left
    with pytest.raises(RunDirError, match=r"another configuration or other inputs"):
        _open_with(tmp_path / "r", data)


def test_the_same_content_elsewhere_is_the_same_input(tmp_path):
    data = tmp_path / "mine.jsonl"
    data.write_text('{"q": "one"}\n')
    _open_with(tmp_path / "r", data).close()
    moved = tmp_path / "elsewhere.jsonl"
    data.rename(moved)
    _open_with(tmp_path / "r", moved).close()


def test_a_changed_server_url_or_model_file_is_refused(tmp_path):
    data = tmp_path / "d.jsonl"
    data.write_text("{}\n")
    model = tmp_path / "m.gguf"
    model.write_bytes(b"weights")
    _open_with(tmp_path / "r", data, base_url="http://127.0.0.1:1/v1", model_file=model).close()
    with pytest.raises(RunDirError, match=r"base_url: \"http://127.0.0.1:1/v1\" is now"):
        _open_with(tmp_path / "r", data, base_url="http://127.0.0.1:2/v1", model_file=model)
    model.write_bytes(b"other weights")
    with pytest.raises(RunDirError, match=r"model_file: .*m\.gguf"):
        _open_with(tmp_path / "r", data, base_url="http://127.0.0.1:1/v1", model_file=model)


def test_a_deleted_config_does_not_let_another_configuration_resume(tmp_path):
    run = _open(tmp_path / "r")
    run.append({"id": "0"})
    run.close()
    (tmp_path / "r" / "config.yaml").unlink()
    with pytest.raises(RunDirError, match=r"differs in: a; from manifest.json"):
        _open(tmp_path / "r", a=2)
    (tmp_path / "r" / "manifest.json").unlink()
    with pytest.raises(RunDirError, match=r"1 record\(s\) of another configuration"):
        _open(tmp_path / "r", a=2)
    assert _open(tmp_path / "r").finished_ids() == {"0"}  # the original configuration still can


def test_records_without_a_fingerprint_are_never_reused(tmp_path):
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / RECORDS).write_text('{"id": "0"}\n')
    with pytest.raises(RunDirError, match="without a fingerprint"):
        _open(tmp_path / "r")


def test_fingerprint_is_stored_in_the_manifest_and_every_record(tmp_path):
    data = tmp_path / "d.jsonl"
    data.write_text("{}\n")
    run = _open_with(tmp_path / "r", data)
    run.append({"id": "0"})
    run.append({"id": "1", "error": "x"}, failed=True)
    manifest = json.loads((tmp_path / "r" / "manifest.json").read_text())
    assert manifest["fingerprint"] == run.fingerprint and len(run.fingerprint) == 16
    assert manifest["inputs"]["data"]["sha256"] == hashlib.sha256(b"{}\n").hexdigest()
    assert run.records()[0]["fingerprint"] == run.failures()[0]["fingerprint"] == run.fingerprint


# --- reading --------------------------------------------------------------------------------------


def test_line_separators_inside_model_text_are_just_text(tmp_path):
    run = _open(tmp_path / "r")
    odd = "a\u2028b\u0085c\u2029d\x1ce\r\f"
    run.append({"id": "0", "text": odd})
    run.append({"id": "1", "text": "plain"})
    assert [r["text"] for r in run.records()] == [odd, "plain"]
    assert [r["text"] for r in read_records(tmp_path / "r" / RECORDS)] == [odd, "plain"]


def test_readers_ignore_a_torn_last_line(tmp_path):
    run = _open(tmp_path / "r")
    run.append({"id": "0"})
    with open(tmp_path / "r" / RECORDS, "ab") as fh:
        fh.write(b'{"id": "1", "te')
    assert [r["id"] for r in read_records(tmp_path / "r" / RECORDS)] == ["0"]


def test_a_json_value_that_is_not_an_object_is_named(tmp_path):
    run = _open(tmp_path / "r")
    run.append({"id": "0"})
    with open(tmp_path / "r" / RECORDS, "ab") as fh:
        fh.write(b"[1, 2]\n")
    with pytest.raises(RunDirError, match=r"records.jsonl:2: corrupt record \(a JSON list"):
        run.records()


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("manifest.json", '{"started": ', r"manifest.json: corrupt JSON"),
        ("manifest.json", "[]", r"manifest.json: expected a JSON object"),
        ("config.yaml", "a: [1\n", r"config.yaml: not valid YAML"),
        ("config.yaml", "- 1\n", r"config.yaml: expected a mapping"),
        ("config.yaml", "!!python/object:os.system x\n", r"config.yaml: not valid YAML"),
        ("manifest.json", "[" * 100_000, r"manifest.json: corrupt JSON"),  # nested too deep
        ("config.yaml", "[" * 100_000, r"config.yaml: not valid YAML"),
        (RECORDS, '{"id": "0", "fingerprint": ' + "[" * 100_000 + "\n", r"records.jsonl:1"),
    ],
)
def test_a_corrupt_manifest_or_config_names_the_file(tmp_path, name, content, message):
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / name).write_text(content)
    with pytest.raises(RunDirError, match=message):
        _open(tmp_path / "r")


def test_an_unusable_out_path_is_one_clear_error(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(RunDirError, match=r"file: cannot use as a run directory \(File exists\)"):
        _open(tmp_path / "file")
    with pytest.raises(RunDirError, match=r"cannot use as a run directory \(Not a directory\)"):
        _open(tmp_path / "file" / "sub")


def test_a_writer_killed_while_rewriting_the_config_leaves_no_torn_file(tmp_path, monkeypatch):
    from pathlib import Path

    run = _open(tmp_path / "r")
    run.append({"id": "0"})
    run.close()
    (tmp_path / "r" / "config.yaml").unlink()  # rewritten on the next open
    real = Path.write_text

    def dies_halfway(self, text, *args, **kwargs):
        real(self, text[: len(text) // 2], *args, **kwargs)
        raise OSError("killed")

    monkeypatch.setattr(Path, "write_text", dies_halfway)
    with pytest.raises(OSError, match="killed"):
        _open(tmp_path / "r")
    monkeypatch.undo()
    assert _open(tmp_path / "r").finished_ids() == {"0"}  # the same run still resumes


def test_credentials_in_urls_are_never_written_and_the_run_still_resumes(tmp_path):
    secret = "http://alice:s3cret@127.0.0.1:9/v1?key=abc123#frag"
    query_only = "https://judge.example/v1?api_key=zzz999"
    config = {"base_url": secret, "judges": [{"url": query_only}], "plain": "http://Host:8/v1"}
    argv = ["selfcorrect", "bbq", f"--base-url={secret}", "--base-url", secret]
    for _ in range(2):  # the second open resumes: its identity did not change
        with RunDir.open(tmp_path, study="test", config=config, argv=argv):
            pass
    written = "".join(p.read_text() for p in tmp_path.iterdir() if p.is_file())
    for leak in ("s3cret", "alice", "abc123", "frag", "zzz999"):
        assert leak not in written
    assert "http://127.0.0.1:9/v1" in written and "--base-url=http://127.0.0.1:9/v1" in written
    assert "http://Host:8/v1" in written  # a URL without secrets is kept as given
