"""The server's request handling below HTTP (engine logic, scripted backend): what a request's
fields become, which check it gets, and which status a failure is answered with. Over real HTTP
with the official client: test_serve.py."""

from __future__ import annotations

import pytest

from selfcorrect.backends.scripted import ScriptedBackend
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
    for seed in range(A.MAX_CACHED_CHECKS + 50):
        svc.plan(parse_request({"messages": USER, "seed": seed}, default_max_tokens=8))
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


@pytest.mark.parametrize(
    "error, status",
    [
        ("openai/x: cannot reach the server at http://h: all 1 request(s) failed", 503),
        ("openai/x: no answer in time from the server at http://h", 504),
        ("no complete answer within the deadline of 30s (1 attempt(s))", 504),
        ("prompt of 3000 tokens + 256 new tokens exceeds the context of 2048", 400),
        ("HTTP 400: maximum context length is 4096 tokens", 400),
        ("HTTP 500: oops", 502),
        ("check: malformed response", 502),
        ("internal error: KeyError: 'x'", 500),
    ],
)
def test_a_failure_is_answered_with_the_status_that_says_whose_it_is(error, status):
    assert A.failure_status(error)[0] == status
