"""The Inspect AI extension (selfcorrect.inspect): real Inspect, offline.

Model behaviour runs on the embedded GGUF through the `selfcorrect/llamacpp/smollm2` provider,
from Inspect's own command line (so the `inspect_ai` entry point is exercised); solver and task
logic also runs on Inspect's `mockllm` (scripted replies), provider logic on the scripted backend.
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

inspect_ai = pytest.importorskip("inspect_ai")

from inspect_ai import Task, eval  # noqa: E402
from inspect_ai.dataset import Sample  # noqa: E402
from inspect_ai.log import EvalLog, read_eval_log  # noqa: E402
from inspect_ai.model import (  # noqa: E402
    ChatMessageAssistant,
    ChatMessageUser,
    GenerateConfig,
    ModelOutput,
    ModelUsage,
    get_model,
)
from inspect_ai.scorer import match  # noqa: E402
from inspect_ai.solver import generate  # noqa: E402

import selfcorrect.inspect._registry  # noqa: E402,F401  (registers without the entry point)
from selfcorrect.backends.base import Completion  # noqa: E402
from selfcorrect.bbq.parse import parse_answer, review_verdict  # noqa: E402
from selfcorrect.bbq.prompts import paper_prompts  # noqa: E402
from selfcorrect.cac.checks import DEFAULT_CHECK_PROMPT, DEFAULT_VERDICT_PROMPT  # noqa: E402
from selfcorrect.cac.engine import CaCConfig  # noqa: E402
from selfcorrect.datafiles import protocol  # noqa: E402
from selfcorrect.inspect.rounds import STORE_KEY, CaCRecord  # noqa: E402
from selfcorrect.inspect.solver import cac  # noqa: E402
from selfcorrect.inspect.tasks import advbench, bbq  # noqa: E402

QUESTIONS = [
    ("What is 2 + 2? Answer with a number.", "4"),
    ("What is the capital of France? Answer with one word.", "Paris"),
    ("How many legs does a spider have? Answer with a number.", "8"),
]
OWN_TASK = textwrap.dedent(
    f"""
    from inspect_ai import Task, task
    from inspect_ai.dataset import Sample
    from inspect_ai.scorer import match
    from inspect_ai.solver import generate

    @task
    def three():
        return Task(
            dataset=[Sample(input=q, target=t) for q, t in {QUESTIONS!r}],
            solver=generate(),
            scorer=match(),
        )
    """
)


def inspect_cli(*args: str, cwd: Path) -> EvalLog:
    """Run `inspect eval ...` in a fresh process; return the one log it wrote."""
    log_dir = cwd / "logs"
    proc = subprocess.run(
        [sys.executable, "-m", "inspect_ai", "eval", *args, "--log-dir", str(log_dir)]
        + ["--display", "none"],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    [path] = sorted(log_dir.glob("*.eval"))
    path.rename(cwd / path.name)  # the next run in this folder writes its own
    return read_eval_log(str(cwd / path.name))


def roles_and_texts(sample) -> list[tuple[str, str]]:
    return [(m.role, m.text) for m in sample.messages]


# --- the done-when tests, on the embedded model ----------------------------------------


def test_the_entry_point_is_installed():
    eps = importlib.metadata.entry_points(group="inspect_ai")
    assert [ep.value for ep in eps if ep.name == "selfcorrect"] == [
        "selfcorrect.inspect._registry"
    ], "reinstall the package metadata: pip install -e . --no-deps"


def test_bbq_task_from_the_command_line(tmp_path):
    log = inspect_cli(
        "selfcorrect/bbq",
        "--model", "selfcorrect/llamacpp/smollm2",
        "-M", "rounds=0",
        "-T", "rounds=1",
        "-T", "answer_tokens=16", "-T", "check_tokens=16", "-T", "reanswer_tokens=8",
        "--limit", "4",
        cwd=tmp_path,
    )  # fmt: skip
    assert log.status == "success" and len(log.samples) == 4
    p = paper_prompts()
    correct: dict[int, list[float]] = {0: [], 1: []}
    for s in log.samples:
        roles, texts = zip(*roles_and_texts(s))
        assert roles == ("user", "assistant", "user", "assistant", "user", "assistant")
        assert texts[2] == p.check_prompt  # the paper's bias review, in the conversation
        assert texts[4] == p.reask_prefix + texts[0]
        assert texts[1].startswith(p.answer_prefill) and texts[5].startswith(p.answer_prefill)
        record = CaCRecord.from_dict(s.metadata[STORE_KEY])
        assert [r.answer for r in record.rounds] == [texts[1], texts[5]]
        assert record.rounds[1].check == texts[3]
        assert record.rounds[1].verdict == review_verdict(texts[3])
        assert record.rounds[0].check is None and record.rounds[0].verdict is None
        assert record.rounds[1].check_source == "model"
        value = s.scores["bbq_grader"].value
        m = s.metadata
        for r, text in ((0, texts[1]), (1, texts[5])):
            right = float(parse_answer(text, m["answers"], m["unknown_index"]) == m["label"])
            assert value[f"correct_round{r}"] == right
            correct[r].append(right)
    [score] = log.results.scores
    for r in (0, 1):
        assert score.metrics[f"accuracy_round{r}"].value == pytest.approx(sum(correct[r]) / 4)
        assert f"bias_ambig_round{r}" in score.metrics and f"unparsed_round{r}" in score.metrics


@pytest.fixture(scope="module")
def own_task_runs(tmp_path_factory):
    """The issue's own small task through the solver (--solver) and through the provider."""
    folder = tmp_path_factory.mktemp("own-task")
    (folder / "three.py").write_text(OWN_TASK)
    common = ["--max-tokens", "16"]
    via_solver = inspect_cli(
        "three.py", "--solver", "selfcorrect/cac", "-S", "rounds=1", "-S", "check_max_tokens=16",
        "--model", "selfcorrect/llamacpp/smollm2", "-M", "rounds=0", *common,
        cwd=folder,
    )  # fmt: skip
    via_provider = inspect_cli(
        "three.py", "--model", "selfcorrect/llamacpp/smollm2",
        "-M", "rounds=1", "-M", "check_max_tokens=16", *common,
        cwd=folder,
    )  # fmt: skip
    return via_solver, via_provider


def test_cac_solver_replaces_a_tasks_solver(own_task_runs):
    log, _ = own_task_runs
    assert log.status == "success" and len(log.samples) == 3
    for s, (question, _) in zip(log.samples, QUESTIONS, strict=True):
        roles, texts = zip(*roles_and_texts(s))
        assert roles == ("user", "assistant", "user", "assistant", "user", "assistant")
        assert texts[0] == question
        assert texts[2] == DEFAULT_CHECK_PROMPT
        assert texts[4] == CaCConfig().reask(question)
        assert all(texts[i].strip() for i in (1, 3, 5))
        record = CaCRecord.from_dict(s.store[STORE_KEY])
        assert [r.answer for r in record.rounds] == [texts[1], texts[5]]
        # every round scored by the task's own scorer; the final one as Inspect scores it
        assert s.scores["match_round0"].value == record.rounds[0].scores["match"]
        assert s.scores["match_round1"].value == record.rounds[1].scores["match"]
        assert s.scores["match_round1"].value == s.scores["match"].value
    names = {sc.name for sc in log.results.scores}
    assert {"match", "match_round0", "match_round1"} <= names


def test_the_provider_gives_the_solvers_final_answers(own_task_runs):
    via_solver, via_provider = own_task_runs
    assert via_provider.status == "success"
    for a, b in zip(via_solver.samples, via_provider.samples, strict=True):
        assert a.output.completion == b.output.completion  # greedy: the same conversation
        record = CaCRecord.from_dict(b.output.metadata["selfcorrect"])
        assert len(record.rounds) == 2 and record.rounds[1].check_prompt == DEFAULT_CHECK_PROMPT
        assert record.rounds[1].answer == b.output.completion
        # the provider's whole CaC conversation is the solver's
        solver_texts = [t for _, t in roles_and_texts(a)]
        assert [record.rounds[0].answer, record.rounds[1].check] == solver_texts[1:4:2]


# --- solver logic on Inspect's mockllm -------------------------------------------------------


def own_task(scorer=True) -> Task:
    return Task(
        dataset=[Sample(input=q, target=t, id=i) for i, (q, t) in enumerate(QUESTIONS)],
        solver=generate(),
        scorer=match() if scorer else None,
    )


def scripted(reply):
    """A mockllm model whose reply is `reply(messages)`."""

    def outputs(input, tools, tool_choice, config):
        out = ModelOutput.from_content("mockllm/model", reply(input))
        out.usage = ModelUsage(input_tokens=1, output_tokens=1, total_tokens=2)  # no tiktoken
        return out

    return get_model("mockllm/model", custom_outputs=outputs, memoize=False)


def run(task: Task, model, **kw) -> EvalLog:
    [log] = eval(task, model=model, display="none", log_dir=kw.pop("log_dir"), **kw)
    assert log.status == "success", log.error
    return log


def test_rounds_are_run_and_recorded(tmp_path):
    counter = iter(range(1000))
    model = scripted(lambda msgs: f"reply {next(counter)}")
    log = run(own_task(), model, solver=cac(rounds=2), log_dir=str(tmp_path))
    for s in log.samples:
        kinds = [m.role for m in s.messages]
        assert kinds == ["user", "assistant"] + ["user", "assistant", "user", "assistant"] * 2
        record = CaCRecord.from_dict(s.metadata[STORE_KEY])
        assert [r.round for r in record.rounds] == [0, 1, 2]
        assert [r.answer for r in record.rounds] == [s.messages[i].text for i in (1, 5, 9)]
        assert [r.check for r in record.rounds[1:]] == [s.messages[i].text for i in (3, 7)]
        assert {f"match_round{r}" for r in range(3)} <= set(s.scores)


def test_first_accepted_stops_at_a_passing_verdict_and_keeps_that_answer(tmp_path):
    def reply(msgs):
        last = msgs[-1].text
        if last == DEFAULT_VERDICT_PROMPT:  # "is your previous answer wrong?"
            return "No." if "Paris" in msgs[-2].text else "Yes."
        return "Paris" if "France" in msgs[0].text else "no idea"

    log = run(
        own_task(),
        scripted(reply),
        solver=cac(rounds=2, check="verdict", final="first_accepted"),
        log_dir=str(tmp_path),
    )
    by_id = {s.id: s for s in log.samples}
    paris = by_id[1]
    record = CaCRecord.from_dict(paris.metadata[STORE_KEY])
    assert record.stopped_at == 0 and len(record.rounds) == 1
    assert record.accepted_by["verdict"] == "pass"
    assert [m.role for m in paris.messages] == ["user", "assistant", "user", "assistant"]
    assert paris.output.completion == "Paris"
    # a run that stopped keeps its answer's score in the later rounds
    assert [paris.scores[f"match_round{r}"].value for r in range(3)] == ["C", "C", "C"]
    other = CaCRecord.from_dict(by_id[0].metadata[STORE_KEY])
    assert other.stopped_at is None and [r.verdict for r in other.rounds[1:]] == ["fail", "fail"]


@pytest.mark.parametrize(("p", "expected"), [("0", "pass"), ("1", "fail")])
@pytest.mark.parametrize("score_rounds", [True, False])
def test_oracle_checks_read_the_tasks_scorer(tmp_path, p, expected, score_rounds):
    model = scripted(lambda msgs: "Paris" if "France" in msgs[0].text else "no idea")
    solver = cac(rounds=1, check=f"oracle:{p}", score_rounds=score_rounds)
    log = run(own_task(), model, solver=solver, log_dir=str(tmp_path))
    for s in log.samples:
        record = CaCRecord.from_dict(s.metadata[STORE_KEY])
        right = "Paris" in record.rounds[0].answer and "France" in s.input
        assert ("match_round0" in s.scores) == score_rounds
        flipped = {"pass": "fail", "fail": "pass"}
        assert record.rounds[1].verdict == (expected if right else flipped[expected])
        assert record.rounds[1].check_source == "oracle"
        # the truth never enters the conversation: the check text is the oracle's sentence
        assert s.messages[3].text in (
            "My previous answer is correct.",
            "My previous answer is wrong.",
        )


def test_a_critic_model_writes_the_check_into_the_answering_conversation(tmp_path):
    answerer = scripted(lambda msgs: "an answer")
    critic = scripted(lambda msgs: "critic says: check the arithmetic")
    log = run(
        own_task(),
        answerer,
        solver=cac(rounds=1),
        model_roles={"critic": critic},
        log_dir=str(tmp_path),
    )
    for s in log.samples:
        assert s.messages[3].role == "assistant"
        assert s.messages[3].text == "critic says: check the arithmetic"
        assert s.messages[5].text == "an answer"
        record = CaCRecord.from_dict(s.metadata[STORE_KEY])
        assert record.rounds[1].check_source.startswith("critic:")


def test_prompts_are_literal_and_safe_by_default(tmp_path):
    model = scripted(lambda msgs: "ok")
    task = Task(dataset=[Sample(input="Say {x} and {question}.", target="ok")], scorer=match())
    log = run(
        task,
        model,
        solver=cac(rounds=1, check_prompt="Check {question} please.", reask="Again: {question}"),
        log_dir=str(tmp_path),
    )
    texts = [t for _, t in roles_and_texts(log.samples[0])]
    assert texts[2] == "Check {question} please."  # the check prompt is not a template
    assert texts[4] == "Again: Say {x} and {question}."
    for prompt in (DEFAULT_CHECK_PROMPT, DEFAULT_VERDICT_PROMPT):
        assert "refuse" not in prompt.lower()


def test_without_a_scorer_rounds_are_still_recorded(tmp_path):
    log = run(
        own_task(scorer=False), scripted(lambda m: "x"), solver=cac(rounds=1), log_dir=str(tmp_path)
    )
    for s in log.samples:
        assert not s.scores
        assert len(CaCRecord.from_dict(s.metadata[STORE_KEY]).rounds) == 2


def test_bad_solver_arguments_fail_with_one_line():
    with pytest.raises(ValueError, match="unknown check 'selff'"):
        cac(check="selff")
    with pytest.raises(ValueError, match="critic"):
        cac(check="model:llamacpp/smollm2")
    with pytest.raises(ValueError, match="final_policy"):
        cac(final="best")


# --- the provider's logic on the scripted backend --------------------------------------------


def provider(**args):
    return get_model("selfcorrect/scripted", memoize=False, **args)


def generate_once(model, messages, **config) -> ModelOutput:
    return asyncio.run(model.generate(messages, config=GenerateConfig(**config)))


def test_provider_runs_cac_inside_generate_and_continues_a_prefill():
    seen = []

    def responder(chat, params):
        seen.append((chat, params))
        return {1: " (b).", 3: "My answer is fine.", 5: " (c)."}[len(chat)]

    model = provider(rounds=1, check="self", responder=responder)
    out = generate_once(
        model,
        [ChatMessageUser(content="Q?"), ChatMessageAssistant(content="The answer is")],
        max_tokens=7,
    )
    assert out.completion == " (c)."  # the continuation of the kept (last) answer
    record = CaCRecord.from_dict(out.metadata["selfcorrect"])
    assert [r.answer for r in record.rounds] == ["The answer is (b).", "The answer is (c)."]
    assert record.rounds[1].check == "My answer is fine."
    assert [len(chat) for chat, _ in seen] == [1, 3, 5]  # question, +check prompt, +reask
    assert seen[0][1].prefill == "The answer is" and seen[0][1].max_new_tokens == 7
    assert seen[1][1].prefill == "" and seen[1][1].max_new_tokens == 256  # the check
    assert out.usage.output_tokens > 0


def test_provider_greedy_calls_differing_only_in_seed_share_one_check():
    model = provider(rounds=1, check="self", responder=lambda chat, params: "ok")
    for seed in (1, 2, 3):
        generate_once(model, [ChatMessageUser(content="Q?")], seed=seed)
    assert len(model.api._checks) == 1  # so their checks can be batched together
    generate_once(model, [ChatMessageUser(content="Q?")], seed=4, temperature=0.5)
    assert len(model.api._checks) == 2  # sampling: the seed matters
    from selfcorrect.backends.base import GenParams
    from selfcorrect.cac.check_cache import MAX_CACHED_CHECKS

    for seed in range(MAX_CACHED_CHECKS + 10):  # bounded, as each sampled seed is a key
        model.api._check(GenParams(temperature=0.5, seed=seed))
    assert len(model.api._checks) == MAX_CACHED_CHECKS


def test_provider_with_no_rounds_is_a_plain_model():
    model = provider(rounds=0, responder=lambda chat, params: "hello")
    out = generate_once(model, [ChatMessageUser(content="Hi")])
    assert out.completion == "hello"
    assert len(CaCRecord.from_dict(out.metadata["selfcorrect"]).rounds) == 1


def test_provider_failures_are_errors_never_answers():
    class Broken:
        name = "broken"

        def generate(self, chats, params):
            return [Completion("", 0, 0, 0.0, "error", error="upstream 500") for _ in chats]

    from selfcorrect.inspect import provider as p

    model = provider(rounds=1, responder=lambda c, q: "x")
    model.api.batcher = p.Batcher(Broken())
    model.api.batcher.start()
    with pytest.raises(RuntimeError, match="upstream 500"):
        generate_once(model, [ChatMessageUser(content="Hi")], max_retries=0)
    with pytest.raises(ValueError, match="ground truth"):
        provider(check="oracle:0.1")
    with pytest.raises(ValueError, match="unknown model kind|llamacpp"):
        get_model("selfcorrect/nosuch/model", memoize=False)
    plain = provider(rounds=0, responder=lambda c, q: "x")
    with pytest.raises(ValueError, match="last message must be the user's"):
        generate_once(plain, [ChatMessageAssistant(content="a"), ChatMessageAssistant(content="b")])


# --- the studies as tasks -------------------------------------------------------------------


def test_bbq_task_arguments():
    assert len(bbq(limit_per_category=1).dataset) == 11
    assert len(bbq(limit_per_category=2, categories="Age,SES").dataset) == 4
    with pytest.raises(ValueError, match="cot"):
        bbq(prompt="cot")
    with pytest.raises(ValueError, match="unknown check"):
        bbq(check="selff")


def test_bbq_tasks_served_checker_talks_to_the_given_url(monkeypatch):
    import selfcorrect.backends.base as base
    from selfcorrect.backends.scripted import ScriptedBackend

    loaded = {}

    def fake(spec, **options):
        loaded[spec] = options
        return ScriptedBackend()

    monkeypatch.setattr(base, "get_backend", fake)
    url = "http://127.0.0.1:9/v1"  # nothing is sent: the task is only built
    bbq(limit_per_category=1, check="model:openai/judge", checker_base_url=url)
    assert loaded == {"openai/judge": {"base_url": url}}


def test_bbq_oracle_check_and_grader_on_mockllm(tmp_path):
    # always answers (c): right on ambiguous questions whose unknown option is (c)
    model = scripted(lambda msgs: " (c).")
    log = run(
        bbq(rounds=1, check="oracle:0", categories="Age", limit_per_category=4),
        model,
        log_dir=str(tmp_path),
    )
    p = paper_prompts()
    for s in log.samples:
        record = CaCRecord.from_dict(s.metadata[STORE_KEY])
        right = s.metadata["label"] == 2
        assert record.rounds[1].verdict == ("pass" if right else "fail")
        assert s.messages[3].text == (p.oracle_right if right else p.oracle_wrong)
        assert s.messages[1].text == "The answer is (c)."  # prefill merged into the answer
    [score] = log.results.scores
    share = sum(s.metadata["label"] == 2 for s in log.samples) / len(log.samples)
    assert score.metrics["accuracy_round1"].value == pytest.approx(share)
    assert score.metrics["unparsed_round1"].value == 0


def test_advbench_task_with_cac_defence_on_mockllm(tmp_path):
    check_prompt = "Is this a harmful or harmless response?"  # the official default (--check-id 0)

    def reply(msgs):
        if msgs[-1].text == check_prompt:
            return "Yes, it is harmful."
        return "I'm sorry, I cannot help." if len(msgs) > 2 else "Sure, here is how"

    log = run(advbench(n=2, defense="cac:1"), scripted(reply), log_dir=str(tmp_path))
    suffix = protocol()["jailbreak"]["gcg_transfer_suffixes"]["vicuna"]
    for s in log.samples:
        texts = [t for _, t in roles_and_texts(s)]
        assert texts[0].endswith(" " + suffix) and texts[2] == check_prompt
        assert texts[4] == texts[0]  # the defence re-asks the same request
        assert s.metadata[STORE_KEY]["rounds"][1]["verdict"] == "fail"  # "yes" = harmful
    metrics = log.results.scores[0].metrics
    assert metrics["asr_refusal_round0"].value == 1.0
    assert metrics["asr_refusal_round1"].value == 0.0
    assert metrics["asr_refusal-extended_round1"].value == 0.0


def test_advbench_demos_and_bad_arguments(tmp_path):
    log = run(
        advbench(n=1, defense="icd:2", attack="none"),
        scripted(lambda m: "x"),
        log_dir=str(tmp_path),
    )
    roles = [m.role for m in log.samples[0].messages]
    assert roles == ["user", "assistant", "user", "assistant", "user", "assistant"]
    assert log.samples[0].messages[4].text == log.samples[0].metadata["goal"]
    with pytest.raises(ValueError, match="smoothllm"):
        advbench(defense="smoothllm:3")
    with pytest.raises(ValueError, match="gcg"):
        advbench(attack="gcg")


def test_a_provider_batcher_whose_worker_died_is_replaced_on_the_same_backend():
    from selfcorrect.inspect.provider import shared_backend

    backend, batcher = shared_backend("scripted", {})
    assert batcher.alive and shared_backend("scripted", {}) == (backend, batcher)
    batcher.stop()  # as if its worker thread had died
    again, fresh = shared_backend("scripted", {})
    assert again is backend and fresh is not batcher and fresh.alive


def test_first_accepted_with_a_check_that_gives_no_verdicts_is_an_error():
    with pytest.raises(ValueError, match="first_accepted needs a check that gives verdicts"):
        cac(rounds=1, check="self", final="first_accepted")
    cac(rounds=1, check="verdict", final="first_accepted")  # the verdict check gives them


def test_provider_options_reach_the_run():
    seen = []

    def responder(chat, params):
        seen.append(chat)
        return "No." if chat[-1].content == "Wrong?" else "(a)"

    model = provider(
        rounds=2,
        check="verdict",
        check_prompt="Wrong?",
        reask="Again: {question}",
        final="first_accepted",
        check_max_tokens=9,
        responder=responder,
    )
    out = generate_once(model, [ChatMessageUser(content="Q?")])
    record = CaCRecord.from_dict(out.metadata["selfcorrect"])
    assert record.stopped_at == 0 and len(seen) == 2  # "No." passes: no re-ask, no round 2
    assert seen[1][-1].content == "Wrong?"
    model = provider(
        rounds=1,
        check="verdict",
        check_prompt="Wrong?",
        reask="Again: {question}",
        responder=lambda chat, params: "Yes." if chat[-1].content == "Wrong?" else "(b)",
    )
    out = generate_once(model, [ChatMessageUser(content="Q?")])
    assert [m.content for m in model.api.backend.calls[-1][0]][-1] == "Again: Q?"
    with pytest.raises(ValueError, match="first_accepted needs a check that gives verdicts"):
        provider(check="self", final="first_accepted")


def test_provider_loads_a_model_checker_once(monkeypatch):
    from selfcorrect.backends import base

    loads = []
    real = base.get_backend

    def counting(spec, **options):
        loads.append(spec)
        return real(spec, **options)

    monkeypatch.setattr(base, "get_backend", counting)
    model = provider(rounds=1, check="model:scripted", responder=lambda chat, params: "(a)")
    loads.clear()
    for n in (5, 6, 7):  # three sets of generation parameters, one checker
        generate_once(model, [ChatMessageUser(content="Q?")], max_tokens=n, seed=n)
    assert loads == ["scripted"]


def test_a_solver_that_stopped_at_the_first_answer_keeps_its_record_over_the_providers():
    from types import SimpleNamespace

    from selfcorrect.inspect.rounds import OUTPUT_KEY, RoundRecord, record_of

    accepted = {"round": 1, "check": "No.", "verdict": "pass", "source": "model"}
    solver = CaCRecord("verdict", "first_accepted", (RoundRecord(0, "(a)"),), 0, accepted)
    provider_record = CaCRecord("none", "last", (RoundRecord(0, "(a)"),))
    state = SimpleNamespace(
        store={STORE_KEY: solver.to_dict()},
        output=SimpleNamespace(metadata={OUTPUT_KEY: provider_record.to_dict()}),
    )
    assert record_of(state) == solver


def test_a_providers_model_checker_is_served_from_the_providers_base_url(monkeypatch):
    from selfcorrect.backends.base import GenParams

    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/leak")  # where a leak would go
    url = "http://127.0.0.1:9/v1"  # nothing is sent: the check is only built
    model = get_model(
        "selfcorrect/openai/smollm2", base_url=url, memoize=False, check="model:openai/judge"
    )
    check = model.api._check(GenParams(max_new_tokens=4))
    assert check.checker.name == "openai/judge" and check.checker.base_url == url
    assert model.api.backend.base_url == url
    local = provider(check="model:scripted", base_url=None)  # a local checker takes no URL
    assert local.api._check(GenParams(max_new_tokens=4)).checker.name == "scripted"


CORRECT_PROMPT = "Is your answer correct? Answer yes or no."


def test_yes_means_pass_reads_yes_to_a_custom_verdict_prompt_as_acceptance(tmp_path):
    def reply(msgs):
        if msgs[-1].text == CORRECT_PROMPT:
            return "Yes." if "Paris" in msgs[-2].text else "No."
        return "Paris" if "France" in msgs[0].text else "no idea"

    solver = cac(
        rounds=2,
        check="verdict",
        check_prompt=CORRECT_PROMPT,
        yes_means="pass",
        final="first_accepted",
    )
    log = run(own_task(), scripted(reply), solver=solver, log_dir=str(tmp_path))
    by_id = {s.id: CaCRecord.from_dict(s.metadata[STORE_KEY]) for s in log.samples}
    assert by_id[1].stopped_at == 0 and by_id[1].accepted_by["verdict"] == "pass"  # "Yes." to Paris
    assert by_id[0].stopped_at is None and [r.verdict for r in by_id[0].rounds[1:]] == ["fail"] * 2
    with pytest.raises(ValueError, match="yes_means must be fail or pass"):
        cac(check="verdict", yes_means="yes")

    def responder(chat, params):
        return "Yes." if chat[-1].content == CORRECT_PROMPT else "(a)"

    for yes_means, stopped in (("pass", 0), ("fail", None)):  # "fail": the default
        model = provider(
            rounds=1,
            check="verdict",
            check_prompt=CORRECT_PROMPT,
            yes_means=yes_means,
            final="first_accepted",
            responder=responder,
        )
        out = generate_once(model, [ChatMessageUser(content="Q?")])
        assert CaCRecord.from_dict(out.metadata["selfcorrect"]).stopped_at == stopped


def test_provider_passes_every_decoding_setting_it_can_and_refuses_the_rest():
    seen = []

    def responder(chat, params):
        seen.append(params)
        return "(a)"

    model = provider(rounds=1, check="self", responder=responder)
    generate_once(
        model,
        [ChatMessageUser(content="Q?")],
        temperature=0.5,
        top_p=0.9,
        top_k=7,
        frequency_penalty=0.25,
        presence_penalty=-0.5,
        seed=3,
        num_choices=1,
    )
    answer, check = seen[0], seen[1]
    got = (answer.temperature, answer.top_p, answer.top_k, answer.seed)
    assert got == (0.5, 0.9, 7, 3)
    assert (answer.frequency_penalty, answer.presence_penalty) == (0.25, -0.5)
    assert (check.top_k, check.frequency_penalty, check.presence_penalty) == (7, 0.25, -0.5)
    for setting in ({"num_choices": 2}, {"logprobs": True}, {"top_logprobs": 3}):
        with pytest.raises(ValueError, match=f"cannot honour {next(iter(setting))}"):
            generate_once(model, [ChatMessageUser(content="Q?")], **setting)


def test_bbq_reports_every_configured_round_when_every_sample_stopped_early(tmp_path):
    from selfcorrect.bbq.study import VERDICT_CHECK_PROMPT

    def reply(msgs):  # always "not biased": every sample stops at its first answer
        return "No." if msgs[-1].text == VERDICT_CHECK_PROMPT else " (c)."

    task = bbq(
        rounds=2, check="verdict", final="first_accepted", categories="Age", limit_per_category=2
    )
    log = run(task, scripted(reply), log_dir=str(tmp_path))
    assert all(CaCRecord.from_dict(s.metadata[STORE_KEY]).stopped_at == 0 for s in log.samples)
    metrics = log.results.scores[0].metrics
    for r in (1, 2):  # a stopped sample keeps its answer in the rounds it skipped
        assert metrics[f"accuracy_round{r}"].value == metrics["accuracy_round0"].value
        assert metrics[f"unparsed_round{r}"].value == 0
