"""The OpenAI-compatible backend against a real llama.cpp server on 127.0.0.1."""

from __future__ import annotations

import pytest

from selfcorrect.backends.base import BackendError, GenParams, chat, get_backend, parallel_calls
from servers import fault_proxy, free_port, llama_server, most_at_once

Q = [chat(("user", "What is 2+2?")), chat(("user", "Name a colour.")), chat(("user", "Say hi."))]


@pytest.fixture(scope="module")
def server_url():
    with llama_server() as url:
        yield url


def _backend(url, **kw):
    return get_backend(
        "openai/smollm2", base_url=url, prefill_mode="completions", backoff=0.01, **kw
    )


def test_batch_in_order_and_deterministic(server_url):
    backend = _backend(server_url, concurrency=3)
    params = GenParams(max_new_tokens=12)
    batch = backend.generate(Q, params)
    singles = [backend.generate([q], params)[0] for q in Q]
    assert [c.text for c in batch] == [c.text for c in singles]
    assert len({c.text for c in batch}) == 3 and all(c.completion_tokens > 0 for c in batch)


@pytest.mark.parametrize("limit", [1, 2])
def test_calls_from_several_threads_share_one_concurrency_bound(server_url, limit):
    """The engine makes a step's calls of different parameters together (parallel_calls):
    `concurrency` still bounds the requests in flight for the whole backend."""
    from concurrent.futures import ThreadPoolExecutor

    seen: list[dict[str, object]] = []
    with fault_proxy(server_url, [], seen) as (url, _):
        backend = _backend(url, concurrency=limit)
        assert parallel_calls(backend) == limit
        with ThreadPoolExecutor(2) as pool:
            calls = [
                pool.submit(backend.generate, [q, q], GenParams(max_new_tokens=6, seed=i))
                for i, q in enumerate(Q[:2])
            ]
            outs = [c.result() for c in calls]
        backend.close()
    assert all(c.error is None and c.text for out in outs for c in out)
    assert len(seen) == 4 and most_at_once(seen) == limit


def test_prefill_with_completions_mode(server_url):
    out = _backend(server_url).generate(
        [chat(("user", "Tell me something."))],
        GenParams(max_new_tokens=8, prefill="The capital of France is"),
    )[0]
    assert "Paris" in out.text and out.error is None


def test_unreachable_server_is_a_clear_error():
    backend = _backend(f"http://127.0.0.1:{free_port()}/v1", max_retries=1)
    with pytest.raises(BackendError, match="cannot reach the server at http://127.0.0.1"):
        backend.generate(Q[:2], GenParams(max_new_tokens=4))


def test_transient_faults_are_retried_honouring_retry_after(server_url):
    faults = [
        (503, {"retry-after": "0"}, b'{"error": "busy"}'),
        (429, {}, b"{}"),
        (200, {}, b"{not json"),
    ]
    with fault_proxy(server_url, faults) as (url, log):
        backend = _backend(url, max_retries=4)
        out = backend.generate([Q[0]], GenParams(max_new_tokens=6))[0]
    assert out.error is None and out.text
    assert [entry.split(" -> ")[1] for entry in log] == ["503", "429", "200", "forward"]


def test_client_errors_are_not_retried_and_fail_only_that_sample(server_url):
    with fault_proxy(server_url, [(400, {}, b'{"error": {"message": "bad request"}}')]) as (
        url,
        log,
    ):
        backend = _backend(url, max_retries=4, concurrency=1)
        out = backend.generate(Q[:2], GenParams(max_new_tokens=6))
    assert out[0].finish_reason == "error" and "HTTP 400" in (out[0].error or "")
    assert out[1].error is None and len(log) == 2


def test_retries_are_bounded(server_url):
    with fault_proxy(server_url, [(500, {}, b"{}")] * 10) as (url, log):
        out = _backend(url, max_retries=2).generate([Q[0]], GenParams(max_new_tokens=4))[0]
    assert "HTTP 500" in (out.error or "") and len(log) == 3


def test_api_key_is_read_from_env_and_sent_as_bearer(monkeypatch, server_url):
    monkeypatch.setenv("MY_KEY", "sk-secret-123")
    seen: list[dict] = []
    with fault_proxy(server_url, [], seen) as (url, _):
        backend = _backend(url, api_key_env="MY_KEY")
        out = backend.generate([Q[0]], GenParams(max_new_tokens=2))[0]
    assert out.error is None
    headers = {k.lower(): v for k, v in seen[0]["headers"].items()}
    assert headers["authorization"] == "Bearer sk-secret-123"
    assert "sk-secret-123" not in repr(backend) and "sk-secret-123" not in str(backend.describe())


def test_retry_after_is_honoured(server_url):
    seen: list[dict] = []
    with fault_proxy(server_url, [(503, {"retry-after": "1"}, b"{}")], seen) as (url, log):
        out = _backend(url, max_retries=2).generate([Q[0]], GenParams(max_new_tokens=2))[0]
    assert out.error is None and len(seen) == 2
    # backoff alone would wait ~0.01 s; the server asked for 1 s
    assert seen[1]["time"] - seen[0]["time"] >= 1.0


def test_every_decoding_field_is_sent_explicitly(server_url):
    seen: list[dict] = []
    params = GenParams(
        max_new_tokens=3,
        temperature=0.7,
        top_p=0.9,
        top_k=20,
        min_p=0.05,
        repeat_penalty=1.0,
        frequency_penalty=0.1,
        presence_penalty=0.2,
        seed=5,
        stop=("\n\n",),
    )
    with fault_proxy(server_url, [], seen) as (url, _):
        _backend(url).generate([Q[0]], params)
    body = seen[0]["json"]
    expected = {
        "max_tokens": 3,
        "temperature": 0.7,
        "top_p": 0.9,
        "top_k": 20,
        "min_p": 0.05,
        "repeat_penalty": 1.0,  # llama_cpp.server's own default would be 1.1
        "repetition_penalty": 1.0,  # vLLM's name
        "frequency_penalty": 0.1,
        "presence_penalty": 0.2,
        "seed": 5,
        "stop": ["\n\n"],
    }
    assert {k: body.get(k) for k in expected} == expected


def test_timeouts_and_empty_completions_are_retried(server_url):
    hang = (200, {"x-delay": "3"}, b"{}")
    empty = (
        200,
        {"content-type": "application/json"},
        b'{"id": "x", "object": "text_completion", "created": 0, "model": "m", "choices": []}',
    )
    with fault_proxy(server_url, [hang, empty]) as (url, log):
        out = _backend(url, max_retries=3, timeout=1.0).generate(
            [Q[0]], GenParams(max_new_tokens=4)
        )[0]
    assert out.error is None and out.text
    assert [entry.split(" -> ")[1] for entry in log][:3] == ["200", "200", "forward"]


def test_many_concurrent_requests_come_back_once_and_in_order(server_url):
    chats = [chat(("user", f"Say the number {i}.")) for i in range(48)]
    backend = _backend(server_url, concurrency=32)
    out = backend.generate(chats, GenParams(max_new_tokens=3))
    assert len(out) == 48 and all(c.error is None for c in out)
    assert backend.requests == 48  # no duplicate requests
    again = [backend.generate([c], GenParams(max_new_tokens=3))[0].text for c in chats[:3]]
    assert again == [c.text for c in out[:3]]


def test_every_request_of_a_conversation_carries_one_session_key(server_url):
    from selfcorrect.cac.checks import SelfCheck
    from selfcorrect.cac.engine import CaCConfig, run_cac

    seen: list[dict] = []
    short = GenParams(max_new_tokens=3)
    with fault_proxy(server_url, [], seen) as (url, _):
        convs = run_cac(
            get_backend("openai/smollm2", base_url=url, backoff=0.01),  # chat mode
            ["Is 7 prime?", "Name a colour."],
            SelfCheck(params=short),
            CaCConfig(rounds=2, answer=short, reanswer=short),
        )
    assert all(len(c.answers()) == 3 for c in convs)
    keys: dict[str, set[str]] = {}
    for request in seen:
        headers = {k.lower(): v for k, v in request["headers"].items()}
        first_user = next(m["content"] for m in request["json"]["messages"] if m["role"] == "user")
        assert headers["x-session-id"] == request["json"]["user"]
        keys.setdefault(first_user, set()).add(headers["x-session-id"])
    assert len(seen) == 2 * 5  # two conversations, five model calls each
    assert [len(v) for v in keys.values()] == [1, 1]  # one key per conversation...
    assert len(set.union(*keys.values())) == 2  # ...and a different one for each


def test_greedy_requests_leave_out_the_fields_servers_spell_differently():
    from selfcorrect.backends.openai_payload import request_body

    greedy = request_body("m", GenParams(temperature=0.0), "extended", "openai/m")["extra_body"]
    assert "top_k" not in greedy and "min_p" not in greedy and greedy["repeat_penalty"] == 1.0
    sampled = request_body("m", GenParams(temperature=0.5), "extended", "openai/m")["extra_body"]
    assert sampled["top_k"] == 0 and sampled["min_p"] == 0.0


def test_a_forked_child_gets_a_loop_and_client_of_its_own(server_url):
    """The backend's event loop runs on a thread, which a forked child does not inherit: the
    child starts its own instead of waiting forever on the parent's."""
    import multiprocessing

    backend = _backend(server_url)
    params = GenParams(max_new_tokens=4)
    parent = backend.generate([Q[0]], params)[0].text  # the loop thread is running now
    ctx = multiprocessing.get_context("fork")
    out = ctx.Queue()
    child = ctx.Process(target=lambda: out.put(backend.generate([Q[0]], params)[0].text))
    child.start()
    try:
        assert out.get(timeout=60) == parent
    finally:
        child.join(timeout=10)
        if child.is_alive():
            child.kill()
