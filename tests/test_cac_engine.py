"""The CaC engine: exact conversations (scripted backend) and real-model runs."""

from __future__ import annotations

import pytest

from selfcorrect.backends.base import GenParams
from selfcorrect.backends.scripted import ScriptedBackend
from selfcorrect.cac.checks import (
    Check,
    CheckResult,
    CheckSettings,
    ModelCheck,
    OracleCheck,
    SelfCheck,
    VerdictCheck,
    make_check,
    parse_yes_no,
)
from selfcorrect.cac.conversation import Conversation
from selfcorrect.cac.engine import CaCConfig, iter_cac, run_cac

CONFIG = CaCConfig(
    rounds=2,
    reask_template="AGAIN: {question}",
    answer=GenParams(max_new_tokens=5, prefill="A:"),
    reanswer=GenParams(max_new_tokens=3, prefill="A:"),
)
CHECK = SelfCheck(prompt="CHECK IT", params=GenParams(max_new_tokens=7))


def _replier(chat, params):
    n = sum(m.role == "assistant" for m in chat)
    return f" reply{n}" if params.prefill else f"review{n}"


def test_exact_conversation_for_two_rounds():
    backend = ScriptedBackend(_replier)
    convs = [Conversation(id=str(i), question=f"Q{i}", system="SYS") for i in range(3)]
    run_cac(backend, convs, CHECK, CONFIG)
    expected = [
        ("system", "SYS", "system", 0),
        ("user", "Q1", "question", 0),
        ("assistant", "A: reply0", "answer", 0),
        ("user", "CHECK IT", "check_prompt", 1),
        ("assistant", "review1", "check", 1),
        ("user", "AGAIN: Q1", "reask", 1),
        ("assistant", "A: reply2", "answer", 1),
        ("user", "CHECK IT", "check_prompt", 2),
        ("assistant", "review3", "check", 2),
        ("user", "AGAIN: Q1", "reask", 2),
        ("assistant", "A: reply4", "answer", 2),
    ]
    assert [(t.role, t.content, t.kind, t.round) for t in convs[1].turns] == expected
    # breadth-first: each step is one call over the whole batch, in order
    assert len(backend.calls) == 5 * 3
    assert [c[0][1].content for c in backend.calls[:3]] == ["Q0", "Q1", "Q2"]
    # per-turn limits and prefill reach the backend
    assert [p.max_new_tokens for _, p in backend.calls[::3]] == [5, 7, 3, 7, 3]
    # the model saw its previous answer and the check in context when re-answering
    last_chat = backend.calls[-1][0]
    assert [m.content for m in last_chat][-3:] == ["CHECK IT", "review3", "AGAIN: Q2"]
    assert convs[0].final_answer().content == "A: reply4"


def test_a_checker_model_sees_exactly_the_conversation_and_nothing_else():
    answerer, checker = ScriptedBackend(_replier), ScriptedBackend(_replier)
    convs = [Conversation(id=str(i), question=f"Q{i}") for i in range(2)]
    run_cac(answerer, convs, ModelCheck(checker=checker, prompt="CHECK IT"), CONFIG)
    assert len(checker.calls) == 2 * 2  # two rounds of two conversations
    for chat, _ in checker.calls:
        conv = next(c for c in convs if c.question == chat[0].content)
        turns = [(t.role, t.content) for t in conv.turns]
        seen = [(m.role, m.content) for m in chat]
        # the checker's chat is a prefix of the conversation up to its check prompt
        assert seen == turns[: len(seen)] and seen[-1] == ("user", "CHECK IT")
    assert all(c.checks()[0].source == "checker:scripted" for c in convs)


def test_ground_truth_reaches_only_the_oracle_it_is_given():
    secret = {"0": "SECRET-LABEL-42", "1": "SECRET-LABEL-43"}
    answerer, checker = ScriptedBackend(_replier), ScriptedBackend(_replier)
    oracle = OracleCheck(lambda conv, answer: secret[conv.id] in answer, prompt="CHECK IT")
    for check in (oracle, ModelCheck(checker=checker), SelfCheck(), VerdictCheck()):
        convs = [Conversation(id=str(i), question=f"Q{i}") for i in range(2)]
        run_cac(answerer, convs, check, CONFIG)
        assert all(len(c.answers()) == 3 for c in convs)
    seen = [m.content for b in (answerer, checker) for chat, _ in b.calls for m in chat]
    assert seen and not any("SECRET" in text for text in seen)
    assert not hasattr(Conversation(id="x", question="Q"), "truth")


def test_oracle_verdicts_follow_truth_and_flip_with_seeded_rate():
    backend = ScriptedBackend(lambda chat, p: " yes")
    right = {str(i) for i in range(200) if i % 2}

    def is_correct(conv, answer):
        return conv.id in right

    def verdicts(p, seed=0):
        convs = [Conversation(id=str(i), question="Q") for i in range(200)]
        run_cac(
            backend, convs, OracleCheck(is_correct=is_correct, p=p, seed=seed), CaCConfig(rounds=1)
        )
        return [c.checks()[0].verdict for c in convs]

    perfect = verdicts(0.0)
    assert perfect == ["fail" if i % 2 == 0 else "pass" for i in range(200)]
    assert verdicts(1.0) == ["pass" if v == "fail" else "fail" for v in perfect]
    noisy = verdicts(0.3)
    flipped = sum(a != b for a, b in zip(noisy, perfect))
    assert 35 <= flipped <= 85 and noisy == verdicts(0.3) and noisy != verdicts(0.3, seed=1)


def test_first_accepted_policy_stops_when_the_check_passes():
    replies = {"Q": "review says no"}  # verdict question: "no" -> pass

    def reply(chat, params):
        return replies["Q"] if chat[-1].content == "CHECK IT" else " first"

    convs = [Conversation(id="a", question="Q")]
    run_cac(
        ScriptedBackend(reply),
        convs,
        VerdictCheck(prompt="CHECK IT"),
        CONFIG,
        final_policy="first_accepted",
    )
    assert convs[0].stopped_at == 0 and len(convs[0].answers()) == 1
    assert convs[0].final_answer().content == "A: first"


def test_demos_go_before_the_question_and_no_check_means_no_rounds():
    backend = ScriptedBackend(_replier)
    demos = (("u1", "a1"), ("check?", "yes it was harmful"))
    convs = [Conversation(id="a", question="Q", system="S")]
    run_cac(backend, convs, None, CONFIG, demos=demos)
    assert [t.content for t in convs[0].turns] == [
        "S",
        "u1",
        "a1",
        "check?",
        "yes it was harmful",
        "Q",
        "A: reply2",
    ]


def test_per_sample_errors_do_not_stop_the_batch():
    from selfcorrect.backends.base import Completion

    class Flaky(ScriptedBackend):
        def generate(self, chats, params):
            out = super().generate(chats, params)
            return [
                Completion("", 0, 0, 0.0, "error", error="boom") if "bad" in c[-1].content else o
                for c, o in zip(chats, out)
            ]

    convs = [Conversation(id="1", question="good"), Conversation(id="2", question="bad")]
    run_cac(Flaky(_replier), convs, CHECK, CONFIG)
    assert convs[1].error == "boom" and convs[0].error is None and len(convs[0].answers()) == 3


def test_a_failed_check_fails_only_its_conversation():
    class HalfBroken:
        name = "half"

        def check(self, backend, conversations, round):
            return [
                CheckResult("P", "", error="checker down")
                if c.id == "1"
                else CheckResult("P", "ok")
                for c in conversations
            ]

    convs = [Conversation(id=str(i), question=f"Q{i}") for i in range(2)]
    run_cac(ScriptedBackend(_replier), convs, HalfBroken(), CONFIG)
    assert convs[1].error == "check: checker down" and len(convs[1].answers()) == 1
    assert convs[0].error is None and len(convs[0].answers()) == 3


def test_a_check_returning_the_wrong_number_of_results_is_an_error():
    class Lossy:
        name = "lossy"

        def check(self, backend, conversations, round):
            return [CheckResult("P", "ok")]

    convs = [Conversation(id=str(i), question="Q") for i in range(2)]
    try:
        run_cac(ScriptedBackend(_replier), convs, Lossy(), CONFIG)
    except RuntimeError as exc:
        assert "returned 1 results for 2" in str(exc)
    else:
        raise AssertionError("a short check result list was accepted")


def test_iter_cac_yields_each_conversation_as_it_finishes_with_a_bounded_window():
    backend = ScriptedBackend(lambda chat, p: "no" if chat[-1].content == "CHECK IT" else " a")
    batch_sizes = []
    original = backend.generate

    def counting(chats, params):
        batch_sizes.append(len(chats))
        return original(chats, params)

    backend.generate = counting  # type: ignore[method-assign]
    questions = (f"Q{i}" for i in range(7))  # a stream, not a list
    seen = []
    for conv in iter_cac(backend, questions, VerdictCheck(prompt="CHECK IT"), CONFIG, window=3):
        seen.append(conv.id)
        assert conv.final_answer() is not None and len(conv.answers()) == 3
    assert sorted(seen) == [f"q{i}" for i in range(7)] and max(batch_sizes) <= 3


def test_checks_are_of_the_check_protocol_and_specs_build_them():
    for check in (SelfCheck(), VerdictCheck(), OracleCheck(lambda c, a: True)):
        assert isinstance(check, Check)
    assert isinstance(ModelCheck(checker=ScriptedBackend()), Check)
    assert parse_yes_no("Yes, it is biased.") == "fail"
    assert parse_yes_no("No. It is fine") == "pass"
    assert parse_yes_no("Maybe") == "unknown"
    assert parse_yes_no("yes", yes_means="pass") == "pass"
    assert isinstance(make_check("self"), SelfCheck)
    assert make_check("none") is None
    assert make_check("oracle:0.25", is_correct=lambda c, a: True).p == 0.25
    custom = make_check("verdict", CheckSettings(verdict_prompt="Biased?"))
    assert custom.prompt == "Biased?"
    assert make_check("self", CheckSettings(prompt="Review.")).prompt == "Review."
    for bad in ("oracle:x", "oracle:2", "oracle", "wat", "self:3", "oracle:0.1"):
        try:
            make_check(bad, is_correct=None if bad == "oracle:0.1" else (lambda c, a: True))
        except ValueError:
            continue
        raise AssertionError(f"{bad} accepted")


def test_real_model_two_rounds_and_batch_order_does_not_change_outputs(smollm2):
    config = CaCConfig(
        rounds=2, answer=GenParams(max_new_tokens=12), reanswer=GenParams(max_new_tokens=12)
    )
    check = SelfCheck(params=GenParams(max_new_tokens=12))
    questions = ["What is the capital of Italy?", "Is the sun a star?", "Name a fruit."]
    together = [Conversation(id=q, question=q) for q in questions]
    run_cac(smollm2, together, check, config)
    alone = [
        run_cac(smollm2, [Conversation(id=q, question=q)], check, config)[0]
        for q in reversed(questions)
    ]
    for a, b in zip(together, reversed(alone)):
        assert [t.content for t in a.turns] == [t.content for t in b.turns]
        assert [t.kind for t in a.turns].count("answer") == 3 and len(a.checks()) == 2
        assert all(
            t.completion_tokens > 0 and t.seconds > 0 for t in a.turns if t.role == "assistant"
        )
    # later turns resumed this conversation's own state instead of recomputing the prompt
    assert all(c.answers()[1].cached_tokens > 0 for c in together)


def test_two_step_answers_keep_reasoning_then_ask_the_followup():
    config = CaCConfig(
        rounds=1,
        reask_template="{question}",
        answer=GenParams(prefill="Think:"),
        reanswer=GenParams(prefill="Think:"),
        followup="Final choice?",
        followup_params=GenParams(max_new_tokens=4, prefill="Choice:"),
    )
    conv = Conversation(id="a", question="Q")
    run_cac(ScriptedBackend(lambda chat, p: " x"), [conv], SelfCheck(prompt="C?"), config)
    kinds = [t.kind for t in conv.turns]
    assert kinds == [
        "question",
        "reasoning",
        "followup",
        "answer",
        "check_prompt",
        "check",
        "reask",
        "reasoning",
        "followup",
        "answer",
    ]
    assert [t.content for t in conv.answers()] == ["Choice: x", "Choice: x"]


def test_first_accepted_with_a_check_that_gives_no_verdicts_is_refused():
    from selfcorrect.cac.checks import SelfCheck, VerdictCheck
    from selfcorrect.cac.engine import Scheduler

    scheduler = Scheduler(ScriptedBackend())
    config = CaCConfig(rounds=1, final_policy="first_accepted")
    with pytest.raises(ValueError, match="first_accepted needs a check that gives verdicts"):
        scheduler.add(Conversation(id="a", question="q"), SelfCheck(), config)  # never passes
    scheduler.add(Conversation(id="b", question="q"), VerdictCheck(), config)
    scheduler.add(Conversation(id="c", question="q"), SelfCheck(), CaCConfig(rounds=1))


def test_misuses_of_the_api_are_refused_before_any_model_call():
    backend = ScriptedBackend()
    with pytest.raises(TypeError, match="wrap one in"):  # not one question per character
        run_cac(backend, "Is 91 prime?", CHECK)
    with pytest.raises(TypeError, match="wrap one in"):
        next(iter_cac(backend, "ab", CHECK))
    with pytest.raises(TypeError, match=r"make_check\('self'\)"):
        run_cac(backend, ["q"], "self", CONFIG)
    assert backend.calls == []


@pytest.mark.parametrize(
    "config", [CONFIG, CaCConfig(rounds=2, final_policy="first_accepted")], ids=["last", "first"]
)
def test_a_conversation_that_has_run_is_refused_not_appended_to(config):
    backend = ScriptedBackend(lambda c, p: "yes" if "CHECK" in c[-1].content else "x")
    check = VerdictCheck(prompt="CHECK?") if config.final_policy == "first_accepted" else CHECK
    [conv] = run_cac(backend, [Conversation("c", "Q?")], check, config)
    turns = list(conv.turns)
    with pytest.raises(ValueError, match="has run already"):
        run_cac(backend, [conv], check, config)
    assert conv.turns == turns


# --- calls of one step made together, for a backend that serves calls in parallel ------------


class _Rendezvous(ScriptedBackend):
    """Each call waits until `parties` calls are in it at the same time (a barrier), so calls
    made one after another break the barrier; records the threads its calls ran in."""

    def __init__(self, parties: int, parallel_calls: int | None = None) -> None:
        super().__init__(_replier)
        self.barrier = __import__("threading").Barrier(parties, timeout=10)
        if parallel_calls is not None:
            self.parallel_calls = parallel_calls
        self.threads: set[int] = set()

    def generate(self, chats, params):
        import threading

        self.threads.add(threading.get_ident())
        if params.max_new_tokens == 99:
            raise RuntimeError("planted failure")
        self.barrier.wait()
        return super().generate(chats, params)


def _differing(tokens: list[int], rounds: int = 0):
    """One conversation per entry, each answering with its own token limit (its own group)."""
    return [
        (
            Conversation(id=str(i), question=f"Q{i}"),
            CaCConfig(rounds=rounds, answer=GenParams(max_new_tokens=n)),
        )
        for i, n in enumerate(tokens)
    ]


def test_a_step_makes_its_calls_together_when_the_backend_serves_calls_in_parallel():
    from selfcorrect.cac.engine import Scheduler

    backend = _Rendezvous(parties=3, parallel_calls=8)
    scheduler = Scheduler(backend)
    for conv, config in _differing([4, 5, 6]):
        scheduler.add(conv, None, config)
    done = scheduler.step()  # sequential calls would break the barrier (BrokenBarrierError)
    assert sorted(c.id for c in done) == ["0", "1", "2"]
    assert [c.final_answer().content for c in sorted(done, key=lambda c: c.id)] == ["review0"] * 3
    assert sorted(p.max_new_tokens for _, p in backend.calls) == [4, 5, 6]


def test_calls_stay_one_at_a_time_in_the_callers_thread_for_other_backends():
    import threading

    from selfcorrect.cac.engine import Scheduler

    backend = _Rendezvous(parties=1)  # no parallel_calls: an in-process backend
    scheduler = Scheduler(backend)
    for conv, config in _differing([4, 5, 6]):
        scheduler.add(conv, None, config)
    assert len(scheduler.step()) == 3
    assert backend.threads == {threading.get_ident()}


def test_a_failing_parallel_call_fails_only_its_own_conversations_when_contained():
    from selfcorrect.cac.engine import Scheduler

    backend = _Rendezvous(parties=2, parallel_calls=4)
    scheduler = Scheduler(backend, contain_failures=True)
    for conv, config in _differing([4, 99, 5]):
        scheduler.add(conv, None, config)
    done = {c.id: c for c in scheduler.step()}
    assert done["1"].error is not None and "planted failure" in done["1"].error
    assert done["0"].error is None and done["2"].error is None
    assert done["0"].final_answer().content == "review0"
    # not contained (a study): the failure stops the run
    scheduler = Scheduler(_Rendezvous(parties=2, parallel_calls=4))
    for conv, config in _differing([4, 99, 5]):
        scheduler.add(conv, None, config)
    with pytest.raises(RuntimeError, match="planted failure"):
        scheduler.step()
