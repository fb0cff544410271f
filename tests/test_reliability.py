"""Nothing lost under kills, faults and bad input; secrets stay out of run directories."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import time

import pytest

from selfcorrect.bbq.study import BBQConfig, run_bbq
from selfcorrect.runs import FAILURES, RECORDS
from servers import fault_proxy, llama_server

ARGS = [
    "bbq",
    "--check",
    "oracle:0",
    "-c",
    "Age",
    "-c",
    "SES",
    "-k",
    "3",
    "--answer-tokens",
    "12",
    "--check-tokens",
    "4",
    "--reanswer-tokens",
    "6",
    "--batch-size",
    "1",
    "-q",
]


def _cli(*args: str, **kw) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "selfcorrect", *args],
        capture_output=True,
        text=True,
        timeout=600,
        **kw,
    )


def _answers(path):
    lines = (path / RECORDS).read_text().splitlines()
    records = [json.loads(line) for line in lines]
    ids = [r["id"] for r in records]
    assert len(ids) == len(set(ids)), "a sample was recorded twice"
    return {r["id"]: [x["answer_text"] for x in r["rounds"]] for r in records}


def test_sigkill_at_random_points_then_rerun_equals_an_uninterrupted_run(tmp_path):
    reference = _cli(*ARGS, "--out", str(tmp_path / "ref"))
    assert reference.returncode == 0, reference.stderr
    rng = random.Random(7)
    killed = tmp_path / "killed"
    for _ in range(3):
        proc = subprocess.Popen(
            [sys.executable, "-m", "selfcorrect", *ARGS, "--out", str(killed)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(rng.uniform(1.0, 4.0))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    final = _cli(*ARGS, "--out", str(killed))
    assert final.returncode == 0, final.stderr
    assert _answers(killed) == _answers(tmp_path / "ref")  # 6 samples, each once, same text


def test_failed_samples_are_counted_and_only_they_are_retried(tmp_path):
    out = tmp_path / "run"
    with llama_server() as url:
        bad = [(400, {}, b'{"error": {"message": "rejected"}}')] * 2
        with fault_proxy(url, bad) as (proxy, _):
            cfg = BBQConfig(
                model="openai/smollm2",
                base_url=proxy,
                check="oracle:0",
                categories=("Age",),
                limit_per_category=4,
                answer_tokens=8,
                check_tokens=4,
                reanswer_tokens=4,
                batch_size=4,
                backend_options={"prefill_mode": "completions", "concurrency": 1},
            )
            first = run_bbq(cfg, out, progress=False, plots=False)
            assert first["failed"] == 2 and len(first["per_round"]) == 2
            assert len((out / FAILURES).read_text().splitlines()) == 2
            done_before = set(_answers(out))
            second = run_bbq(cfg, out, progress=False, plots=False)
    assert second["failed"] == 0 and len(_answers(out)) == 4 and done_before < set(_answers(out))


def test_api_key_never_reaches_the_run_directory(tmp_path, monkeypatch):
    secret = "sk-test-do-not-write-1234567890"
    monkeypatch.setenv("OPENAI_API_KEY", secret)
    with llama_server() as url:
        cfg = BBQConfig(
            model="openai/smollm2",
            base_url=url,
            check="self",
            categories=("Age",),
            limit_per_category=2,
            answer_tokens=6,
            check_tokens=6,
            reanswer_tokens=4,
            backend_options={"prefill_mode": "completions"},
        )
        run_bbq(cfg, tmp_path / "run", progress=False)
    for file in (tmp_path / "run").rglob("*"):
        if file.is_file():
            assert secret.encode() not in file.read_bytes(), file


@pytest.mark.parametrize(
    "args, message",
    [
        (["-c", "NotACategory"], "unknown BBQ category NotACategory"),
        (["--limit-per-category", "0"], "Invalid value"),
        (["--check", "oracle:abc"], "check 'oracle:abc': P must be a number in [0, 1]"),
        (["--check", "oracle:1.5"], "P must be a number in [0, 1]"),
        (["--prompt", "poem"], "unknown prompt style 'poem'"),
        (["--model", "gpt5"], "unknown model 'gpt5'"),
        (["--data", "/nonexistent/file.jsonl"], "no such file"),
    ],
)
def test_bad_options_exit_2_with_one_clear_line(tmp_path, args, message):
    result = _cli("bbq", *args, "--out", str(tmp_path / "o"), "-q")
    assert result.returncode == 2, result.stderr
    assert message in result.stderr and "Traceback" not in result.stderr


def test_malformed_data_rows_are_reported_and_the_run_continues(tmp_path):
    from selfcorrect.datafiles import vendored

    good = vendored("bbq", "paper_subset", "Age.jsonl").read_text().splitlines()[:2]
    data = tmp_path / "mine.jsonl"
    data.write_bytes(
        ("\n".join(good) + "\n{broken\n").encode() + b"\xff\n" + ("x" * (2 << 20)).encode() + b"\n"
    )
    result = _cli(
        "bbq",
        "--data",
        str(data),
        "--check",
        "oracle:0",
        "--answer-tokens",
        "6",
        "--check-tokens",
        "4",
        "--reanswer-tokens",
        "4",
        "--out",
        str(tmp_path / "o"),
        "-q",
    )
    assert result.returncode == 0, result.stderr
    assert (
        "3 malformed data row(s) skipped" in result.stderr
        and "mine.jsonl:3: invalid JSON" in result.stderr
    )
    assert len(_answers(tmp_path / "o")) == 2
