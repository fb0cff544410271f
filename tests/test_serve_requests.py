"""The server's request handling below HTTP (engine logic, scripted backend): what a request's
fields become, which check it gets, and which status a failure is answered with. Over real HTTP
with the official client: test_serve.py."""

from __future__ import annotations

import pytest

from selfcorrect.backends.base import BackendError, Completion
from selfcorrect.backends.scripted import ScriptedBackend
from selfcorrect.cac.checks import CheckResult, VerdictCheck
from selfcorrect.cac.conversation import Conversation
from selfcorrect.cac.engine import CaCConfig, Scheduler
from selfcorrect.serve import app as A
from selfcorrect.serve.batcher import Batcher
from selfcorrect.serve.schema import RequestError, parse_request

USER = [{"role": "user", "content": "Is the sun a star?"}]


def service(**config) -> A.CaCService:
    return A.CaCService(A.ServeConfig(model="scripted", **config), Batcher(ScriptedBackend()))


def test_every_decoding_field_reaches_the_generation_parameters():
    req = parse_request(
        {
            "messages": USER,
            "max_tokens": 99,
            "max_completion_tokens": 12,  # the newer name wins
            "temperature": 0.7,
            "top_p": 0.9,
            "seed": 42,
            "stop": ["\n", "END"],
            "presence_penalty": 0.5,
            "frequency_penalty": -0.25,
        },
        default_max_tokens=256,
    )
    p = req.params
    assert (p.max_new_tokens, p.temperature, p.top_p, p.seed) == (12, 0.7, 0.9, 42)
    assert p.stop == ("\n", "END") and (p.presence_penalty, p.frequency_penalty) == (0.5, -0.25)


def test_a_request_without_a_seed_gets_a_random_one_not_always_the_same():
    seeds = {parse_request({"messages": USER}, default_max_tokens=8).params.seed for _ in range(8)}
    assert len(seeds) > 1


@pytest.mark.parametrize("field", ["response_format", "logit_bias", "top_logprobs"])
def test_fields_the_server_cannot_honour_are_refused_not_ignored(field):
    with pytest.raises(RequestError, match=field):
        parse_request({"messages": USER, field: {"type": "json_object"}}, default_max_tokens=8)


def test_an_out_of_range_selfcorrect_field_is_named_with_its_path():
    with pytest.raises(RequestError) as caught:
        parse_request({"messages": USER, "selfcorrect": {"rounds": -1}}, default_max_tokens=8)
    assert caught.value.param == "selfcorrect.rounds"


def test_the_check_prompt_override_reaches_the_check_and_checks_are_shared_and_bounded():
    svc = service(check="verdict")
    body = {"messages": USER, "seed": 1, "selfcorrect": {"check_prompt": "Wrong? yes/no"}}
    check, config, name, final = svc.plan(parse_request(body, default_max_tokens=8))
    assert check.prompt == "Wrong? yes/no" and name == "verdict" and final == "last"
    again, *_ = svc.plan(parse_request(body, default_max_tokens=8))
    assert again is check  # equal settings share one check object, so one check call
    for seed in range(A.MAX_CACHED_CHECKS + 50):  # sampled, so each seed is its own check
        body = {"messages": USER, "seed": seed, "temperature": 0.5}
        svc.plan(parse_request(body, default_max_tokens=8))
    assert len(svc._checks) == A.MAX_CACHED_CHECKS


def test_first_accepted_needs_a_check_that_gives_verdicts():
    body = {"messages": USER, "selfcorrect": {"final": "first_accepted"}}
    with pytest.raises(RequestError, match="first_accepted needs a check") as caught:
        service().plan(parse_request(body, default_max_tokens=8))  # the default check: self
    assert caught.value.param == "selfcorrect.final"
    body["selfcorrect"]["check"] = "verdict"
    _, config, _, final = service().plan(parse_request(body, default_max_tokens=8))
    assert final == config.final_policy == "first_accepted"
    with pytest.raises(ValueError, match="first_accepted needs a check"):
        A.ServeConfig(model="scripted", final="first_accepted")  # at start, not per request


class Failing(ScriptedBackend):
    """A backend whose calls from the `after`-th on fail the given way: raise `how` if it is
    an exception, else return failed completions of that kind."""

    def __init__(self, how, after=0):
        super().__init__()
        self.how, self.after = how, after

    def generate(self, chats, params):
        if self.after:
            self.after -= 1
            return super().generate(chats, params)
        if isinstance(self.how, Exception):
            raise self.how
        return [Completion("", 0, 0, 0.0, "error", error="no", error_kind=self.how) for _ in chats]


class FailingCheck(VerdictCheck):
    def check(self, backend, conversations, round):
        return [CheckResult("Wrong?", "", error="gone", error_kind="unreachable")] * len(
            conversations
        )


@pytest.mark.parametrize(
    "how, status",
    [
        (BackendError("openai/x: cannot reach the server", kind="unreachable"), 503),
        (BackendError("openai/x: no answer in time", kind="timeout"), 504),
        (BackendError("openai/x: the server refused the credentials"), 502),
        (KeyError("x"), 500),  # a bug of ours
        ("invalid", 400),  # e.g. the prompt does not fit the model's context
        ("timeout", 504),
        (None, 502),  # a backend that does not say whose failure it is: the upstream's
    ],
)
def test_a_failure_is_answered_with_the_status_that_says_whose_it_is(how, status):
    scheduler = Scheduler(Failing(how), contain_failures=True)
    scheduler.add(Conversation("c", "Hi"), None, CaCConfig(rounds=0))
    [done] = scheduler.step()
    code, body = A.failure_reply(done.error, done.error_kind)
    assert code == status == body["error"]["code"]
    kinds = {400: "invalid_request_error", 500: "server_error"}
    assert body["error"]["type"] == kinds.get(status, "upstream_error")


@pytest.mark.parametrize(
    "backend, check, status",
    [
        (ScriptedBackend(), FailingCheck(), 503),  # a check of its own that failed
        (Failing("timeout", after=1), VerdictCheck(), 504),  # the model failed at checking
    ],
)
def test_a_failed_check_keeps_its_kind_and_the_first_failure_is_the_cause(backend, check, status):
    scheduler = Scheduler(backend, contain_failures=True)
    scheduler.add(Conversation("c", "Hi"), check, CaCConfig(rounds=1))
    done = []
    while scheduler.jobs:
        done += scheduler.step()
    [conv] = done
    assert conv.error.startswith("check: ") and len(conv.answers()) == 1
    assert A.failure_reply(conv.error, conv.error_kind)[0] == status
    first = (conv.error, conv.error_kind)
    conv.fail("later", "internal")
    assert (conv.error, conv.error_kind) == first


def test_yes_means_says_which_way_a_custom_verdict_prompt_reads():
    prompt = "Is your answer correct? Answer yes or no."
    svc = service(check="verdict")

    def check_of(**fields):
        body = {"messages": USER, "seed": 1, "selfcorrect": {"check_prompt": prompt, **fields}}
        return svc.plan(parse_request(body, default_max_tokens=8))[0]

    assert check_of(yes_means="pass").parser("Yes, it is correct.") == "pass"
    assert check_of().parser("Yes, it is correct.") == "fail"  # the default: "yes" = wrong
    assert check_of(yes_means="pass") is not check_of()  # the direction is part of the key
    server_wide = service(check="verdict", yes_means="pass")
    body = {"messages": USER, "selfcorrect": {"check_prompt": prompt}}
    assert server_wide.plan(parse_request(body, default_max_tokens=8))[0].parser("Yes.") == "pass"
    with pytest.raises(RequestError) as caught:
        check_of(yes_means="yes")
    assert caught.value.param == "selfcorrect.yes_means"
    with pytest.raises(ValueError, match="yes_means must be fail or pass"):
        A.ServeConfig(model="scripted", yes_means="yes")


class Counting(ScriptedBackend):
    def __init__(self) -> None:
        super().__init__(lambda chat, params: "Yes, it is.")
        self.sizes: list[int] = []

    def generate(self, chats, params):
        self.sizes.append(len(chats))
        return super().generate(chats, params)


def test_greedy_requests_without_a_seed_are_still_batched_together():
    """Each request without a seed gets a random one, which greedy decoding ignores: requests
    that differ only in it share every call (answer, check, re-answer)."""
    svc = service(rounds=1, check="self")
    backend = Counting()
    scheduler = Scheduler(backend, contain_failures=True)
    plans = [svc.plan(parse_request({"messages": USER}, default_max_tokens=8)) for _ in range(3)]
    assert len({config.answer.seed for _, config, _, _ in plans}) > 1  # the seeds do differ
    for i, (check, config, _, _) in enumerate(plans):
        scheduler.add(Conversation(str(i), "Is the sun a star?"), check, config)
    while scheduler.jobs:
        scheduler.step()
    assert backend.sizes == [3, 3, 3]
