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
    total = len(_answers(tmp_path / "ref"))
    for kill in range(3):
        before = len(_records_raw(killed)) if (killed / RECORDS).exists() else 0
        proc = subprocess.Popen(
            [sys.executable, "-m", "selfcorrect", *ARGS, "--out", str(killed)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        # wait for progress (no fixed delay), then kill at a random moment of the next sample
        _wait_for_records(proc, killed, before + 1)
        time.sleep(rng.uniform(0.0, 0.1))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        on_disk = len(_records_raw(killed))
        assert before < on_disk < total, f"kill {kill} did not land mid-run ({on_disk}/{total})"
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


# --- one writer, fingerprinted resume, interrupts (issue 19) -------------------------------------


def _records_raw(path):
    """Every record line on disk, split on b"\\n" only, duplicates kept (a torn tail dropped)."""
    data = (path / RECORDS).read_bytes()
    return [json.loads(line) for line in data.rpartition(b"\n")[0].split(b"\n") if line.strip()]


def _wait_for_records(proc, out, n=1, limit=600.0):
    """Wait (polling, no fixed delay) until `out` holds `n` finished records."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"the run ended early with {proc.returncode}"
        if (out / RECORDS).exists() and len(_records_raw(out)) >= n:
            return
        time.sleep(0.05)
    raise AssertionError("no progress")


def _start(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "selfcorrect", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_two_writers_on_one_out_the_second_is_refused_and_records_stay_unique(tmp_path):
    out = tmp_path / "run"
    first = _start(*ARGS, "--out", str(out))
    try:
        _wait_for_records(first, out)
        first.send_signal(signal.SIGSTOP)  # paused mid-run, still holding the directory
        second = _cli(*ARGS, "--out", str(out))
    finally:
        first.send_signal(signal.SIGCONT)
    assert first.wait(timeout=600) == 0, first.stderr.read()
    assert second.returncode == 2
    lines = second.stderr.strip().splitlines()
    assert lines == [
        f"error: {out} is being written by process {first.pid}; wait for it to "
        "finish or use another --out directory"
    ], second.stderr
    ids = [r["id"] for r in _records_raw(out)]
    assert len(ids) == 6 and len(set(ids)) == 6


def _tiny_data(path, n=2):
    from selfcorrect.datafiles import vendored

    rows = vendored("bbq", "paper_subset", "Age.jsonl").read_text().split("\n")[:n]
    path.write_text("\n".join(rows) + "\n")
    return path


TINY = [
    "--answer-tokens",
    "6",
    "--check-tokens",
    "4",
    "--reanswer-tokens",
    "4",
    "-q",
]


def test_resume_refuses_an_edited_data_file_and_a_config_once_config_yaml_is_gone(tmp_path):
    data = _tiny_data(tmp_path / "mine.jsonl")
    out = tmp_path / "run"
    args = ["bbq", "--data", str(data), "--check", "oracle:0", *TINY, "--out", str(out)]
    assert _cli(*args).returncode == 0
    before = (out / RECORDS).read_bytes()
    rows = [json.loads(line) for line in data.read_text().split("\n") if line]
    rows[0]["context"] += " Both had just arrived."  # a real edit of one question
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    edited = _cli(*args)
    assert edited.returncode == 2 and "Traceback" not in edited.stderr
    assert len(edited.stderr.strip().splitlines()) == 1
    assert f"different inputs (data: {data.resolve()} (sha256" in edited.stderr
    (out / "config.yaml").unlink()
    other = _cli(*[a if a != "oracle:0" else "oracle:1" for a in args])
    assert other.returncode == 2 and "differs in: check" in other.stderr, other.stderr
    assert (out / RECORDS).read_bytes() == before  # nothing was written by either refusal


def test_defend_on_two_attack_directories_into_one_out_is_refused(tmp_path):
    for name, attack in (("a", "none"), ("b", "transfer:vicuna")):
        made = _cli(
            "jailbreak", "attack", "--attack", attack, "--n", "1", "--out", str(tmp_path / name)
        )
        assert made.returncode == 0, made.stderr
    with open(tmp_path / "a" / RECORDS, "ab") as fh:
        fh.write(b'{"id": "advbench:9", "go')  # a torn last line from a killed attack
    defend = ["jailbreak", "defend", "-d", "none", "-j", "refusal", "--no-harmless"]
    small = ["--max-new-tokens", "4", "-q", "--out", str(tmp_path / "d")]
    first = _cli(*defend, str(tmp_path / "a"), *small)
    assert first.returncode == 0, first.stderr
    second = _cli(*defend, str(tmp_path / "b"), *small)
    # refused, naming what differs: the attack directory (config) or its prompts (inputs)
    assert second.returncode == 2
    assert "sources" in second.stderr or "attack_prompts" in second.stderr
    # the report reads the run, a torn line and a U+2028 in a record included
    record = _records_raw(tmp_path / "d")[0]
    with open(tmp_path / "d" / RECORDS, "ab") as fh:
        line = json.dumps(
            {**record, "id": "x", "final_answer": "a\u2028b\u0085c"}, ensure_ascii=False
        )
        fh.write(line.encode() + b"\n" + b'{"id": "torn", "fin')
    report = _cli("report", str(tmp_path / "d"), "--out", str(tmp_path / "r.html"))
    assert report.returncode == 0, report.stderr


@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_ctrl_c_and_sigterm_say_what_was_kept_and_exit_130_or_143(tmp_path, sig, code):
    out = tmp_path / "run"
    proc = _start(*ARGS, "--out", str(out))
    _wait_for_records(proc, out)
    proc.send_signal(signal.SIGSTOP)  # hold it mid-run so the signal cannot miss
    kept = len(_records_raw(out))
    assert 1 <= kept < 6
    proc.send_signal(sig)
    proc.send_signal(signal.SIGCONT)
    assert proc.wait(timeout=600) == code
    stderr = proc.stderr.read()
    n = len(_records_raw(out))
    assert n >= kept and "Traceback" not in stderr
    assert stderr.strip().splitlines()[-1] == (
        f"interrupted: {n} finished records kept; rerun the same command to resume"
    )
    if sig == signal.SIGTERM:  # and the same command resumes to a complete, duplicate-free run
        assert _cli(*ARGS, "--out", str(out)).returncode == 0
        ids = [r["id"] for r in _records_raw(out)]
        assert len(ids) == len(set(ids)) == 6


@pytest.mark.parametrize(
    "setup, message",
    [
        (lambda p: p.write_text("x"), "cannot use as a run directory (File exists)"),
        (
            lambda p: (p.mkdir(), (p / "config.yaml").write_text("a: [1\n")),
            "config.yaml: not valid YAML",
        ),
        (
            lambda p: (p.mkdir(), (p / "manifest.json").write_text("{")),
            "manifest.json: corrupt JSON",
        ),
    ],
)
def test_unusable_out_directories_are_one_line(tmp_path, setup, message):
    out = tmp_path / "out"
    setup(out)
    result = _cli("bbq", "-c", "Age", "-k", "1", "--out", str(out), "-q")
    assert result.returncode == 2 and message in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_report_of_a_corrupt_run_names_the_file_and_os_errors_are_one_line(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text("study: bbq\n")
    (run / "metrics.json").write_text('{"rounds": ')
    bad = _cli("report", str(run), "--out", str(tmp_path / "r.html"))
    assert bad.returncode == 2 and f"{run / 'metrics.json'}: corrupt JSON" in bad.stderr
    (tmp_path / "file").write_text("x")
    (run / "metrics.json").unlink()
    blocked = _cli("report", str(run), "--out", str(tmp_path / "file" / "r.html"))
    assert blocked.returncode == 2 and "Traceback" not in blocked.stderr, blocked.stderr
    assert len(blocked.stderr.strip().splitlines()) == 1


def test_chat_stdin_has_a_line_limit():
    with open("/dev/zero", "rb") as zero:
        result = subprocess.run(
            [sys.executable, "-m", "selfcorrect", "chat", "--max-new-tokens", "1"],
            stdin=zero,
            capture_output=True,
            text=True,
            timeout=600,
        )
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip() == (
        "error: standard input line 1 is longer than 65,536 characters; "
        "chat reads one question per line"
    )


def test_failed_questions_exit_1_unless_allowed(tmp_path):
    common = ["bbq", "--model", "openai/smollm2", "--check", "oracle:0", "-c", "Age", "-k", "3"]
    common += [*TINY, "--option", "prefill_mode=completions", "--option", "concurrency=1"]
    bad = [(400, {}, b'{"error": {"message": "rejected"}}')]
    with llama_server() as url:
        with fault_proxy(url, bad) as (proxy, _):
            failed = _cli(*common, "--base-url", proxy, "--out", str(tmp_path / "a"))
        with fault_proxy(url, bad) as (proxy, _):
            allowed = _cli(
                *common, "--base-url", proxy, "--out", str(tmp_path / "b"), "--allow-failures"
            )
    assert failed.returncode == 1, failed.stderr
    assert "error: 1 question(s) failed" in failed.stderr and "--allow-failures" in failed.stderr
    assert allowed.returncode == 0 and "warning: 1 question(s) failed" in allowed.stderr


def test_dollar_signs_in_plot_labels_are_text(tmp_path):
    from selfcorrect.report.plots import asr_plot

    judge = {"n": 1, "asr_initial": 0.5, "asr_final": 0.0, "over_refusal": None}
    metrics = {"defenses": {"$\\frac{$": {"judges": {"$x^$": judge}, "agreement": {}}}}
    paths = asr_plot(metrics, tmp_path)
    assert "$\\frac{$" in paths[1].read_text()  # the SVG holds the literal text


def test_model_text_reaches_the_terminal_without_control_sequences():
    from selfcorrect.cac.conversation import Conversation, Turn
    from selfcorrect.cli.common import format_transcript, strip_control

    evil = (
        "ok\x1b[2J\x1b]0;pwned\x07\x1b]8;;http://x\x1b\\link\x1b]8;;\x1b\\ \rover\u202edone\x9b31m!"
    )
    assert strip_control(evil) == "oklink \nover" + "done!"
    conv = Conversation(id="c\x1b[31m1", question="q")
    conv.turns.append(Turn(role="assistant", content=evil, kind="answer", round=0))
    conv.error = "bad \x1b[5m server"
    text = format_transcript(conv)
    assert not any(ch in text for ch in "\x1b\x07\x9b\r\u202e") and "oklink" in text
