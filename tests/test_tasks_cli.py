"""`selfcorrect task` on the command line: options that cannot apply are one-line errors, failed
questions exit 1 unless --allow-failures, a local checker or grader next to a served model.
Servers are a stand-in that rejects every request (each question fails); the model is scripted."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from servers import echo_server


def _task(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "selfcorrect", "task", *args, "-q"],
        capture_output=True,
        text=True,
        timeout=300,
    )


def _data(tmp_path):
    path = tmp_path / "q.jsonl"
    path.write_text("".join(json.dumps({"q": f"{i} + 1?", "a": i + 1}) + "\n" for i in range(2)))
    return ["--data", str(path), "--question-field", "q", "--answer-field", "a"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--compare", "intrinsic", "--stop", "oracle"], "--stop does not apply with --compare"),
        (["--compare", "intrinsic", "--stop", "never"], "--stop does not apply with --compare"),
        (["--sc-k", "2"], "self-consistency options (--sc-k) need --compare"),
        (
            ["--compare", "intrinsic", "--sc-temperature", "0.5", "--sc-max-k", "4"],
            "self-consistency options (--sc-temperature, --sc-max-k) need --compare",
        ),
    ],
)
def test_options_that_cannot_apply_are_one_line_errors(tmp_path, args, message):
    out = tmp_path / "out"
    result = _task(
        *_data(tmp_path), "--scorer", "numeric", "--model", "scripted", *args, "--out", str(out)
    )
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip() == f"error: {result.stderr.strip()[7:]}"
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not out.exists()


def test_self_consistency_options_apply_with_its_mode(tmp_path):
    out = tmp_path / "sc"
    result = _task(
        *_data(tmp_path),
        "--scorer",
        "numeric",
        "--model",
        "scripted",
        "--compare",
        "self-consistency",
        "--sc-k",
        "2",
        "--sc-temperature",
        "0.5",
        "--out",
        str(out),
    )
    assert result.returncode == 0, result.stderr
    config = (out / "config.yaml").read_text()
    assert "k: 2" in config and "temperature: 0.5" in config


def test_failed_questions_exit_1_unless_allowed(tmp_path):
    common = [*_data(tmp_path), "--scorer", "numeric", "--model", "openai/x", "--rounds", "0"]
    with echo_server(400) as url:
        failed = _task(*common, "--base-url", url, "--out", str(tmp_path / "a"))
        allowed = _task(
            *common, "--base-url", url, "--out", str(tmp_path / "b"), "--allow-failures"
        )
        compared = _task(
            *common, "--base-url", url, "--compare", "intrinsic", "--out", str(tmp_path / "c")
        )
        fast = _task(
            *common,
            "--base-url",
            url,
            "--compare",
            "intrinsic",
            "--fail-fast",
            "--out",
            str(tmp_path / "d"),
        )
    assert failed.returncode == 1, failed.stderr
    assert "no question finished: no plots, no report" in failed.stdout
    assert not (tmp_path / "a" / "report.html").exists()
    assert "error: 2 question(s) failed" in failed.stderr and "--allow-failures" in failed.stderr
    assert allowed.returncode == 0 and "warning: 2 question(s) failed" in allowed.stderr
    assert compared.returncode == 1 and "error: 2 sample(s) failed" in compared.stderr
    assert fast.returncode == 2 and "--fail-fast" in fast.stderr, fast.stderr


def test_a_local_checker_and_grader_next_to_a_served_model(tmp_path):
    # only the openai/ model gets --base-url: the scripted checker and grader must not refuse it
    args = [*_data(tmp_path), "--model", "openai/x", "--check", "model:scripted"]
    with echo_server(400) as url:
        result = _task(
            *args,
            "--scorer",
            "llm:scripted",
            "--base-url",
            url,
            "--allow-failures",
            "--out",
            str(tmp_path / "o"),
        )
    assert result.returncode == 0, result.stderr
    assert "--base-url only applies" not in result.stderr
