"""The task study: stop rules on a scripted backend (engine logic), and the command on the real
embedded model: GSM8K, a user JSONL, a kill and a resume, an LLM grader, and the comparison of
intrinsic, oracle-stopped and self-consistency."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import pytest

from selfcorrect.backends.scripted import ScriptedBackend
from selfcorrect.cac.checks import DEFAULT_FAIL_TEXT, DEFAULT_STOP_TEXT
from selfcorrect.runs import RECORDS
from selfcorrect.tasks import prompts as P
from selfcorrect.tasks.compare import mode_config, parse_modes, run_compare
from selfcorrect.tasks.study import TaskConfig, run_task

FAST = ["--answer-tokens", "12", "--check-tokens", "12", "-q"]


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "selfcorrect", *args], capture_output=True, text=True, timeout=600
    )


def _records(path):
    return [json.loads(line) for line in (path / RECORDS).read_text().splitlines()]


def _eggs_file(tmp_path, n=1):
    rows = [{"q": f"A hen lays eggs. How many eggs in case {i}?", "a": 18} for i in range(n)]
    path = tmp_path / "eggs.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _answers_then(*answers: str):
    """A scripted model: reviews say nothing; answer i is answers[number of re-asks so far]."""

    def respond(chat, params):
        if chat[-1].content == P.REVIEW_PROMPT:
            return " I see no problems."
        reasks = sum(m.content.startswith("Based on the problems") for m in chat)
        return " " + answers[reasks]

    return respond


def _scripted_run(tmp_path, name, **fields):
    backend = ScriptedBackend(_answers_then("7.", "18.", "5.", "5."))
    cfg = TaskConfig(
        model="scripted",
        data=str(_eggs_file(tmp_path)),
        question_field="q",
        answer_field="a",
        scorer="numeric",
        rounds=3,
        **fields,
    )
    metrics = run_task(cfg, tmp_path / name, backend=backend, progress=False, plots=False)
    return metrics, _records(tmp_path / name)[0], backend


def test_intrinsic_runs_every_round_and_keeps_the_last_answer(tmp_path):
    m, record, _ = _scripted_run(tmp_path, "intrinsic", stop="never")
    assert [r["extracted"] for r in record["rounds"]] == ["7", "18", "5", "5"]
    assert [r["accuracy"] for r in m["per_round"]] == [0.0, 1.0, 0.0, 0.0]
    assert [(f["wrong_to_right"], f["right_to_wrong"]) for f in m["flips"]] == [
        (1, 0),
        (0, 1),
        (0, 0),
    ]
    assert record["stopped_at"] is None


def test_oracle_stop_keeps_the_first_right_answer_and_never_shows_the_truth(tmp_path):
    m, record, backend = _scripted_run(tmp_path, "oracle", stop="oracle")
    assert [r["extracted"] for r in record["rounds"]] == ["7", "18"]
    assert record["stopped_at"] == 1
    assert [r["accuracy"] for r in m["per_round"]] == [0.0, 1.0, 1.0, 1.0]
    assert [c["verdict"] for c in record["checks"]] == ["fail", "pass"]
    assert record["checks"][0]["text"] == " I see no problems."  # the model's review is in context
    seen = "\n".join(msg.content for chat, _ in backend.calls for msg in chat)
    assert DEFAULT_STOP_TEXT not in seen and DEFAULT_FAIL_TEXT not in seen
    assert m["tokens_per_question"][3]["generated_mean"] == 0  # nothing generated after the stop


def test_oracle_stopped_verdicts_are_the_truths_so_check_accuracy_is_not_applicable(tmp_path):
    m, record, _ = _scripted_run(tmp_path, "oracle", stop="oracle")
    assert [c["source"] for c in record["checks"]] == ["oracle-stop:model", "oracle-stop"]
    assert [(c["accuracy"], c["n"]) for c in m["check_accuracy"]] == [(None, 0)] * 3


def test_oracle_check_lets_the_model_read_the_verdict(tmp_path):
    cfg = mode_config(TaskConfig(), "oracle-check")
    assert (str(cfg.check), cfg.stop) == ("oracle:0", "check")
    m, record, backend = _scripted_run(tmp_path, "told", check="oracle:0", stop="check")
    assert record["stopped_at"] == 1
    seen = "\n".join(msg.content for chat, _ in backend.calls for msg in chat)
    assert DEFAULT_FAIL_TEXT in seen


def test_modes_are_validated():
    assert parse_modes("intrinsic, oracle-stopped,intrinsic") == ("intrinsic", "oracle-stopped")
    with pytest.raises(ValueError, match="unknown mode oracle"):
        parse_modes("intrinsic,oracle")
    with pytest.raises(ValueError, match="intrinsic self-correction uses no ground truth"):
        mode_config(TaskConfig(check="oracle:0"), "intrinsic")


def test_gsm8k_command_on_the_real_model_writes_metrics_with_flips(tmp_path):
    out = tmp_path / "gsm8k"
    args = ["task", "--data", "gsm8k", "--limit", "5", "--rounds", "1", "--check", "self"]
    result = _cli(*args, *FAST, "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert "flips round 1: wrong->right" in result.stdout
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["n"] == 5 and len(metrics["per_round"]) == 2
    assert (
        sum(
            metrics["flips"][0][k]
            for k in ("wrong_to_right", "right_to_wrong", "stayed_right", "stayed_wrong")
        )
        == 5
    )
    assert metrics["tokens_per_question"][1]["check_tokens_mean"] > 0
    records = _records(out)
    assert len(records) == 5 and all(len(r["rounds"]) == 2 for r in records)
    assert all(r["answer"].isdigit() for r in records)  # gold numbers read after "####"
    html = (out / "report.html").read_text()
    assert "Task run" in html and "wrong→right" in html and (out / "task_rounds.png").exists()
    again = _cli(*args, *FAST, "--out", str(out))  # a rerun resumes: nothing is redone
    assert again.returncode == 0 and len(_records(out)) == 5


def test_user_jsonl_with_an_llm_grader_on_the_real_model(tmp_path):
    data = tmp_path / "mine.jsonl"
    rows = [
        {"question": "What is the capital of France?", "gold": "Paris"},
        {"question": "What colour is the sky on a clear day?", "gold": "blue"},
    ]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "llm"
    result = _cli(
        "task", "--data", str(data), "--answer-field", "gold", "--scorer", "llm:llamacpp/smollm2",
        "--rounds", "0", *FAST, "--out", str(out),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    row = metrics["per_round"][0]
    assert row["n"] == 2 and row["unscored"] + row["correct"] <= 2
    for record in _records(out):
        # the grader's verdict is strict: either read, or unscored and wrong
        r = record["rounds"][0]
        assert (r["extracted"] is None and r["correct"] is False) or r["extracted"]


def test_a_killed_run_resumes_with_one_record_per_question(tmp_path):
    data = _eggs_file(tmp_path, n=8)
    args = [
        "task", "--data", str(data), "--question-field", "q", "--answer-field", "a",
        "--scorer", "numeric", "--rounds", "1", "--batch-size", "1", *FAST,
    ]  # fmt: skip
    reference = _cli(*args, "--out", str(tmp_path / "ref"))
    assert reference.returncode == 0, reference.stderr
    killed = tmp_path / "killed"
    proc = subprocess.Popen(
        [sys.executable, "-m", "selfcorrect", *args, "--out", str(killed)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        path = killed / RECORDS
        if path.exists() and path.read_bytes().count(b"\n") >= 2:
            break
        time.sleep(0.02)
    assert proc.poll() is None, "the run finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    partial = len(_records(killed))
    assert 2 <= partial < 8
    final = _cli(*args, "--out", str(killed))
    assert final.returncode == 0, final.stderr
    ids = [r["id"] for r in _records(killed)]
    assert sorted(ids) == sorted(set(ids)) and len(ids) == 8
    texts = {r["id"]: [x["answer_text"] for x in r["rounds"]] for r in _records(killed)}
    assert texts == {
        r["id"]: [x["answer_text"] for x in r["rounds"]] for r in _records(tmp_path / "ref")
    }


def test_compare_intrinsic_oracle_stopped_and_self_consistency_on_the_real_model(tmp_path, smollm2):
    # seed 2 draws 4 questions on which this model both fixes and breaks one answer intrinsically
    base = TaskConfig(data="csqa", limit=4, rounds=1, answer_tokens=12, check_tokens=12, seed=2)
    modes = "intrinsic,oracle-stopped,self-consistency"
    summary = run_compare(base, modes, tmp_path, sc_max_k=4, backend=smollm2, progress=False)
    intrinsic, oracle = summary["modes"]
    assert (intrinsic["stop"], oracle["stop"]) == ("never", "oracle")
    assert intrinsic["right_to_wrong"] >= 1 and oracle["stopped_early"] >= 1  # not vacuous
    assert oracle["right_to_wrong"] == 0 and oracle["accuracy_first"] == intrinsic["accuracy_first"]
    # greedy and batch-independent: the wrong answers get the same review and re-answer in both
    # runs, so the oracle stop adds exactly the answers intrinsic correction broke
    n = intrinsic["n"]
    assert (
        round(oracle["accuracy_final"] * n)
        == round(intrinsic["accuracy_final"] * n) + intrinsic["right_to_wrong"]
    )
    sc = summary["self_consistency"]
    assert sc["matched_to"] == "intrinsic" and 1 <= sc["k"] <= sc["k_drawn"] <= 4
    assert sc["target_tokens_per_question"] == intrinsic["tokens_per_question"]
    if sc["k_drawn"] < 4:  # drawing stopped once the target was reached
        assert sc["curve"][-1]["tokens_per_question"] >= sc["target_tokens_per_question"]
    html = (tmp_path / "report.html").read_text()
    assert "oracle-stopped" in html and "self-consistency" in html
    assert (tmp_path / "accuracy_vs_tokens.png").exists()
    sc_records = _records(tmp_path / "self-consistency")
    assert len(sc_records) == 4 * sc["k_drawn"]
    by_question: dict[str, set[str]] = {}
    for r in sc_records:
        by_question.setdefault(r["question_id"], set()).add(r["answer_text"])
    assert any(len(texts) > 1 for texts in by_question.values())  # samples differ by seed
    again = run_compare(base, modes, tmp_path, sc_max_k=4, backend=smollm2, progress=False)
    assert again == summary and len(_records(tmp_path / "self-consistency")) == len(sc_records)


def test_cot_reads_the_answer_after_the_reasoning(tmp_path):
    def respond(chat, params):
        if chat[-1].content.startswith("So what is the final answer?"):
            assert params.prefill == P.ANSWER_CUE
            return " 18."
        return " 16 - 3 - 4 = 9 eggs, 9 * 2 = 18 dollars."

    backend = ScriptedBackend(respond)
    cfg = TaskConfig(
        model="scripted",
        data=str(_eggs_file(tmp_path)),
        question_field="q",
        answer_field="a",
        scorer="numeric",
        prompt="cot",
        rounds=1,
    )
    run_task(cfg, tmp_path / "cot", backend=backend, progress=False, plots=False)
    [record] = _records(tmp_path / "cot")
    kinds = [t["kind"] for t in record["turns"]]
    assert kinds.count("reasoning") == 2 and kinds.count("followup") == 2
    assert [r["answer_text"] for r in record["rounds"]] == ["The answer is 18."] * 2
    assert [r["correct"] for r in record["rounds"]] == [True, True]
    assert "Let's think step by step." in backend.calls[0][0][-1].content


def test_a_local_checker_and_grader_keep_no_url_when_the_model_is_served(tmp_path):
    # the answering model is an openai/ spec at --base-url; the checker and the grader are local
    # (scripted) and must not be given the URL (get_backend refuses it for a non-openai spec)
    from selfcorrect.bbq.study import BBQConfig, check_settings
    from selfcorrect.specs import served_options

    url = "http://127.0.0.1:9/v1"
    cfg = TaskConfig(
        model="openai/x",
        base_url=url,
        data=str(_eggs_file(tmp_path)),
        question_field="q",
        answer_field="a",
        scorer="llm:scripted",
        check="model:scripted",
        rounds=1,
    )
    backend = ScriptedBackend(_answers_then("7.", "18."))
    m = run_task(cfg, tmp_path / "local", backend=backend, progress=False, plots=False)
    [record] = _records(tmp_path / "local")
    assert m["failed"] == 0 and [c["source"] for c in record["checks"]] == ["checker:scripted"]
    # an openai/ checker or grader shares the URL; BBQ uses the same rule
    assert served_options(cfg.check_spec, url) == {} == served_options(cfg.scorer_spec, url)
    served = TaskConfig(model="openai/x", base_url=url, check="model:openai/judge")
    assert served_options(served.check_spec, url) == {"base_url": url}
    assert served_options(served.check_spec, None) == {}
    bbq = BBQConfig(model="openai/x", base_url=url, check="model:scripted")
    assert check_settings(bbq).checker_options == {}
    bbq = BBQConfig(model="openai/x", base_url=url, check="model:openai/judge")
    assert check_settings(bbq).checker_options == {"base_url": url}


def test_data_text_is_never_read_as_a_template():
    from selfcorrect.tasks.data import TaskItem
    from selfcorrect.tasks.study import question_text

    item = TaskItem(
        "t", "Is {options} or {format} {question}?", "A", ("x {format}", "y"), ("A", "B")
    )
    body = "Is {options} or {format} {question}?\nAnswer choices:\n(A) x {format}\n(B) y"
    assert question_text(item, "direct", "choice") == body + "\n" + P.FORMAT["choice"]
    assert question_text(item, "cot", "choice") == body + "\nLet's think step by step."


class _FailingBackend:
    """Every request fails (as a server's 4xx fails one question)."""

    name = "failing"

    def generate(self, chats, params):
        from selfcorrect.backends.base import Completion

        return [Completion("", 0, 0, 0.0, "error", error="rejected") for _ in chats]


def test_fail_fast_reaches_every_compare_mode(tmp_path):
    from selfcorrect.backends.base import BackendError

    base = TaskConfig(
        model="scripted",
        data=str(_eggs_file(tmp_path, n=3)),
        question_field="q",
        answer_field="a",
        scorer="numeric",
    )
    kept = run_compare(
        base, "oracle-stopped", tmp_path / "kept", backend=_FailingBackend(), progress=False
    )
    assert kept["modes"][0]["failed"] == 3
    for modes in ("oracle-stopped", "self-consistency"):
        out = tmp_path / modes
        with pytest.raises(BackendError, match="--fail-fast"):
            run_compare(
                base, modes, out, sc_k=1, backend=_FailingBackend(), progress=False, fail_fast=True
            )
        if modes != "self-consistency":  # stopped at the first failure
            assert len((out / modes / "failures.jsonl").read_text().splitlines()) == 1
