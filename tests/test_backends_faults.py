"""The OpenAI-compatible backend against hostile servers on 127.0.0.1 (no model needed).

Deadlines are asserted with generous bounds (3x the configured deadline): these tests check
that a request ends, not how fast.
"""

from __future__ import annotations

import threading
import time

import pytest

from selfcorrect.backends.base import BackendError, GenParams, chat, get_backend
from servers import black_hole, echo_server, fault_proxy, free_port, trickle_server

Q = [chat(("user", "What is 2+2?")), chat(("user", "Name a colour."))]
KEY = "sk-test-SECRET-4711"


def _backend(url, **kw):
    options = {"prefill_mode": "completions", "template": "chatml", "backoff": 0.01, **kw}
    return get_backend("openai/m", base_url=url, **options)


def _ends_within(seconds, call):
    """Run `call` in a thread; (finished in time, its exception). A hung call fails the test
    instead of hanging it (the server's shutdown then lets the thread end)."""
    box: dict = {}

    def target():
        try:
            call()
        except Exception as exc:  # noqa: BLE001 - reported to the test
            box["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    return not thread.is_alive(), box.get("error")


@pytest.mark.parametrize("server", [black_hole, trickle_server], ids=["black-hole", "trickle"])
def test_a_server_that_never_finishes_ends_within_the_deadline(server):
    deadline = 2.0
    with server() as url:
        backend = _backend(url, timeout=1.0, deadline=deadline, max_retries=5, concurrency=2)
        # the old behaviour: max_retries x timeout per read, or forever for a trickle
        ended, error = _ends_within(
            3 * deadline, lambda: backend.generate(Q, GenParams(max_new_tokens=4))
        )
    assert ended
    assert isinstance(error, BackendError) and error.kind == "timeout"
    assert "no answer in time from the server" in str(error) and "\n" not in str(error)


def test_the_deadline_covers_a_trickle_that_beats_every_read_timeout():
    # bytes arrive every 0.2 s, the read timeout is 1 s: only the total deadline can end it
    with trickle_server(0.2) as url:
        backend = _backend(url, timeout=1.0, deadline=1.5, max_retries=0)
        ended, error = _ends_within(
            4.5, lambda: backend.generate(Q[:1], GenParams(max_new_tokens=4))
        )
    assert ended and isinstance(error, BackendError) and "deadline of 1.5s" in str(error)


def test_an_echoed_api_key_never_reaches_an_error(monkeypatch):
    monkeypatch.setenv("SC_TEST_KEY", KEY)
    with echo_server(401) as url:
        backend = _backend(url, api_key_env="SC_TEST_KEY", max_retries=3)
        with pytest.raises(BackendError) as info:  # every request refused: stop the run
            backend.generate(Q, GenParams(max_new_tokens=4))
    message = str(info.value)
    assert "refused the credentials" in message and "HTTP 401" in message
    assert "Bearer ***" in message  # the server did echo it
    assert KEY not in message and KEY not in repr(backend) and KEY not in str(backend.describe())


def test_an_echoed_key_is_scrubbed_from_per_sample_errors(monkeypatch):
    monkeypatch.setenv("SC_TEST_KEY", KEY)
    with echo_server(400) as url:
        out = _backend(url, api_key_env="SC_TEST_KEY").generate(Q, GenParams(max_new_tokens=4))
    assert all(c.finish_reason == "error" for c in out)
    assert all("HTTP 400" in c.error and KEY not in c.error for c in out)
    assert {c.error_kind for c in out} == {"invalid"}  # the request's fault, not the server's


@pytest.mark.parametrize(
    "status, kind", [(413, "invalid"), (422, "invalid"), (504, "timeout"), (500, "upstream")]
)
def test_a_refused_request_says_whose_failure_it_is(status, kind):
    with echo_server(status) as url:
        [out] = _backend(url, max_retries=0).generate(Q[:1], GenParams(max_new_tokens=4))
    assert out.finish_reason == "error" and f"HTTP {status}" in out.error
    assert out.error_kind == kind


def test_url_credentials_are_scrubbed():
    url = f"http://alice:pa55word@127.0.0.1:{free_port()}/v1"
    backend = _backend(url, max_retries=0)
    with pytest.raises(BackendError, match="cannot reach") as info:
        backend.generate(Q[:1], GenParams(max_new_tokens=4))
    assert info.value.kind == "unreachable"
    assert "pa55word" not in str(info.value) and "alice:" not in str(info.value)
    assert "pa55word" not in repr(backend) and "pa55word" not in str(backend.describe())


def test_a_key_that_cannot_be_a_header_is_a_local_error_not_a_server_fault(monkeypatch):
    monkeypatch.setenv("SC_TEST_KEY", "sk-abc\n")
    with pytest.raises(BackendError, match="cannot be sent in an HTTP header"):
        _backend("http://127.0.0.1:9/v1", api_key_env="SC_TEST_KEY")
    monkeypatch.setenv("SC_TEST_KEY", "sk-ключ")
    with pytest.raises(BackendError, match="non-ASCII"):
        _backend("http://127.0.0.1:9/v1", api_key_env="SC_TEST_KEY")


def test_a_template_error_is_reported_as_such_and_never_sent():
    strict = (
        "{% if messages[0]['role'] != 'system' %}{{ raise_exception('system first') }}{% endif %}"
    )
    with echo_server(500) as upstream, fault_proxy(upstream, []) as (url, log):
        out = _backend(url, template=strict).generate(Q[:1], GenParams(max_new_tokens=4))[0]
    assert out.finish_reason == "error" and "chat template error: system first" in out.error
    assert out.error_kind == "invalid"  # a chat the model's template refuses: the caller's
    assert "malformed" not in out.error and log == []  # not retried, nothing sent


def test_retries_are_bounded_per_backend_instance():
    faults = [(504, {}, b"{}")] * 50
    with echo_server(500) as upstream, fault_proxy(upstream, faults) as (url, log):
        backend = _backend(url, max_retries=4, retry_budget=3, concurrency=1)
        out = backend.generate([chat(("user", f"q{i}")) for i in range(4)], GenParams())
    assert all(c.finish_reason == "error" for c in out)
    assert backend.retries == 3 and len(log) == 4 + 3  # one try each, 3 retries in all
    assert any("retry budget is spent" in c.error for c in out)
    assert {c.error_kind for c in out} == {"timeout"}  # a gateway timeout, however it ended


def test_retry_after_longer_than_the_deadline_gives_up_at_once():
    with (
        echo_server(500) as upstream,
        fault_proxy(upstream, [(504, {"retry-after": "60"}, b"{}")]) as (url, log),
    ):
        start = time.monotonic()
        out = _backend(url, deadline=5.0).generate(Q[:1], GenParams(max_new_tokens=4))[0]
    assert time.monotonic() - start < 5.0 and len(log) == 1
    assert "asked to retry after 60s" in out.error and out.error_kind == "timeout"


def test_retry_time_is_bounded_per_backend_instance():
    faults = [(503, {"retry-after": "0.3"}, b"{}")] * 50
    with echo_server(500) as upstream, fault_proxy(upstream, faults) as (url, log):
        backend = _backend(url, max_retries=20, retry_seconds=1.0)
        out = backend.generate(Q[:1], GenParams(max_new_tokens=4))[0]
    assert "retry budget is spent" in out.error
    assert backend.retry_spent >= 1.0 and 2 <= backend.retries < 20
