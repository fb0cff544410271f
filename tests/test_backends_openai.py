"""The OpenAI-compatible backend against a real llama.cpp server on 127.0.0.1."""

from __future__ import annotations

import pytest

from selfcorrect.backends.base import BackendError, GenParams, chat, get_backend
from servers import fault_proxy, free_port, llama_server

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


def test_api_key_is_read_from_env_and_not_shown(monkeypatch, server_url):
    monkeypatch.setenv("MY_KEY", "sk-secret-123")
    backend = _backend(server_url, api_key_env="MY_KEY")
    assert "sk-secret-123" not in repr(backend) and "sk-secret-123" not in str(
        vars(backend).get("name")
    )


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
