"""`selfcorrect serve`: a real server process on loopback, talked to with the official client."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from tests.servers import fault_proxy, free_port, llama_server

openai = pytest.importorskip("openai")

TOKENS = ["--max-tokens", "12", "--check-max-tokens", "12"]
KEY = "sk-test-serve-key-0123456789"


@contextmanager
def serve(*args: str, env: dict[str, str] | None = None) -> Iterator[tuple[str, subprocess.Popen]]:
    """Start `selfcorrect serve` on a free loopback port; yield (base URL, process)."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "selfcorrect", "serve", "--port", str(port), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, **(env or {})},
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"serve exited {proc.returncode}: {proc.stderr.read().decode()}")
            try:
                urllib.request.urlopen(base + "/health", timeout=2).read()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("serve did not start") from None
                time.sleep(0.2)
        yield base, proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()


def client(base: str, **kw):
    return openai.OpenAI(
        base_url=base + "/v1", api_key=kw.pop("api_key", "none"), max_retries=0, **kw
    )


def post(base: str, body: bytes, headers: dict[str, str] | None = None) -> tuple[int, dict]:
    req = urllib.request.Request(
        base + "/v1/chat/completions",
        data=body,
        method="POST",
        headers={"content-type": "application/json", **(headers or {})},
    )
    try:
        with urllib.request.urlopen(req, timeout=120) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    audit = tmp_path_factory.mktemp("audit")
    with serve("--model", "llamacpp/smollm2", "--rounds", "1", *TOKENS, "--out", str(audit)) as (
        base,
        _,
    ):
        yield base, audit


def ask(c, question: str, **kw):
    return c.chat.completions.create(
        model="llamacpp/smollm2", messages=[{"role": "user", "content": question}], **kw
    )


def test_plain_completion_carries_every_round_and_summed_usage(server):
    base, audit = server
    r = ask(client(base), "Is 91 a prime number?")
    sc = r.model_extra["selfcorrect"]
    assert r.choices[0].message.content == sc["rounds"][-1]["answer"] != ""
    assert [t["kind"] for t in sc["turns"]] == ["answer", "check", "answer"]
    assert sc["kept_round"] == 1 and sc["check"] == "self" and sc["rounds"][0]["check"]
    assert r.usage.completion_tokens == sum(t["completion_tokens"] for t in sc["turns"])
    assert r.usage.prompt_tokens == sum(t["prompt_tokens"] for t in sc["turns"])
    assert all(t["seconds"] > 0 for t in sc["turns"])
    assert sc["model_seconds"] == pytest.approx(sum(t["seconds"] for t in sc["turns"]), abs=1e-3)
    records = [json.loads(line) for line in (audit / "records.jsonl").read_text().splitlines()]
    assert any(
        rec["id"] == r.id and rec["final_answer"] == r.choices[0].message.content for rec in records
    )


def test_streaming_gives_the_same_answer_in_openai_chunks(server):
    base, _ = server
    c = client(base)
    plain = ask(c, "Name a red fruit.")
    chunks = list(ask(c, "Name a red fruit.", stream=True, stream_options={"include_usage": True}))
    text = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
    assert text == plain.choices[0].message.content
    assert chunks[-1].usage.total_tokens == plain.usage.total_tokens and not chunks[-1].choices
    assert any(ch.choices and ch.choices[0].finish_reason for ch in chunks)


@pytest.mark.parametrize("rounds, model_calls", [(0, 1), (1, 3), (2, 5)])
def test_extra_body_overrides_rounds(server, rounds, model_calls):
    base, _ = server
    r = ask(client(base), "Is the sun a star?", extra_body={"selfcorrect": {"rounds": rounds}})
    sc = r.model_extra["selfcorrect"]
    assert len(sc["turns"]) == model_calls and len(sc["rounds"]) == rounds + 1


def test_check_and_prompt_and_policy_overrides(server):
    base, _ = server
    r = ask(
        client(base),
        "Is the sun a star?",
        extra_body={
            "selfcorrect": {
                "check": "verdict",
                "check_prompt": "Wrong? yes or no.",
                "final": "first_accepted",
            }
        },
    )
    sc = r.model_extra["selfcorrect"]
    assert sc["check"] == "verdict" and sc["final"] == "first_accepted"
    assert sc["turns"][1]["verdict"] in ("pass", "fail", "unknown")
    if sc["turns"][1]["verdict"] == "pass":  # accepted: the first answer is kept, no re-ask
        assert sc["kept_round"] == 0 and len(sc["turns"]) == 2


def test_system_prompt_and_earlier_turns_are_kept(server):
    base, audit = server
    messages = [
        {"role": "system", "content": "You answer in one word."},
        {"role": "user", "content": "Capital of France?"},
        {"role": "assistant", "content": "Paris."},
        {"role": "user", "content": "And of Italy?"},
    ]
    r = client(base).chat.completions.create(model="llamacpp/smollm2", messages=messages)
    rec = next(
        json.loads(line)
        for line in (audit / "records.jsonl").read_text().splitlines()
        if json.loads(line)["id"] == r.id
    )
    kinds = [t["kind"] for t in rec["turns"]]
    assert kinds[:4] == ["system", "context", "context", "question"]
    assert rec["turns"][3]["content"] == "And of Italy?" and rec["messages"] == messages


def test_32_concurrent_requests_each_match_the_request_served_alone(server):
    base, _ = server
    c = client(base)
    questions = [f"Give one word for the number {i}." for i in range(8)]
    alone = {q: ask(c, q).choices[0].message.content for q in questions}
    results: list[tuple[str, str]] = []
    errors: list[BaseException] = []

    def one(q: str) -> None:
        try:
            results.append((q, ask(c, q).choices[0].message.content))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=one, args=(q,)) for q in questions * 4]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(results) == 32
    assert all(text == alone[q] for q, text in results)


@pytest.mark.parametrize(
    "body, status, field",
    [
        (b"{not json", 400, None),
        (b"[]", 400, None),
        (json.dumps({"model": "llamacpp/smollm2"}).encode(), 400, "messages"),
        (
            json.dumps({"messages": [{"role": "wizard", "content": "x"}]}).encode(),
            400,
            "messages[0].role",
        ),
        (
            json.dumps({"messages": [{"role": "user", "content": 3}]}).encode(),
            400,
            "messages[0].content",
        ),
        (
            json.dumps(
                {"messages": [{"role": "user", "content": "x"}], "max_tokens": "a"}
            ).encode(),
            400,
            "max_tokens",
        ),
        (json.dumps({"messages": [{"role": "user", "content": "x"}], "n": 2}).encode(), 400, "n"),
        (
            json.dumps({"messages": [{"role": "user", "content": "x"}], "temperature": 9}).encode(),
            400,
            "temperature",
        ),
        (
            json.dumps({"messages": [{"role": "assistant", "content": "x"}]}).encode(),
            400,
            "messages",
        ),
        (
            json.dumps(
                {
                    "messages": [{"role": "user", "content": "x"}],
                    "selfcorrect": {"check": "oracle:0.1"},
                }
            ).encode(),
            400,
            "selfcorrect.check",
        ),
        (
            json.dumps(
                {"messages": [{"role": "user", "content": "x"}], "selfcorrect": {"rounds": -1}}
            ).encode(),
            400,
            "rounds",
        ),
        (
            json.dumps({"model": "gpt-9", "messages": [{"role": "user", "content": "x"}]}).encode(),
            404,
            "model",
        ),
        (b'{"messages": "' + b"x" * (5 << 20) + b'"}', 413, None),
        (b"[" * 200_000, 400, "not valid JSON"),  # nested too deep for the parser
        (
            json.dumps(
                {"messages": [{"role": "user", "content": "x"}], "response_format": {"type": "j"}}
            ).encode(),
            400,
            "response_format",
        ),
        (
            json.dumps(  # the server's check (self) gives no verdicts: nothing could be accepted
                {
                    "messages": [{"role": "user", "content": "x"}],
                    "selfcorrect": {"final": "first_accepted"},
                }
            ).encode(),
            400,
            "selfcorrect.final",
        ),
        (  # the client's request is too long for the model: its fault (400), not the upstream's
            json.dumps(
                {"messages": [{"role": "user", "content": "x"}], "max_tokens": 1 << 20}
            ).encode(),
            400,
            "exceeds the context",
        ),
    ],
)
def test_bad_requests_get_4xx_naming_the_field_and_the_server_stays_up(server, body, status, field):
    base, _ = server
    code, reply = post(base, body)
    assert code == status and reply["error"]["code"] == status and reply["error"]["message"]
    if field:
        assert field in reply["error"]["message"]
    assert urllib.request.urlopen(base + "/health", timeout=5).status == 200


def test_models_and_health(server):
    base, _ = server
    assert [m.id for m in client(base).models.list()] == ["llamacpp/smollm2"]
    health = json.loads(urllib.request.urlopen(base + "/health", timeout=5).read())
    assert health["status"] == "ok"


def test_bearer_token_is_required_and_never_logged(tmp_path):
    audit = tmp_path / "audit"
    with serve(
        "--model",
        "llamacpp/smollm2",
        "--rounds",
        "0",
        *TOKENS,
        "--api-key-env",
        "SERVE_KEY",
        "--out",
        str(audit),
        env={"SERVE_KEY": KEY},
    ) as (base, proc):
        with pytest.raises(openai.AuthenticationError):
            ask(client(base, api_key="wrong"), "Hi")
        code, _ = post(base, json.dumps({"messages": [{"role": "user", "content": "x"}]}).encode())
        assert code == 401
        assert ask(client(base, api_key=KEY), "Hi").choices[0].message.content
        proc.terminate()
        out, err = proc.communicate(timeout=30)
    assert KEY.encode() not in out + err
    assert all(KEY not in p.read_text() for p in audit.iterdir() if p.is_file())


@pytest.fixture(scope="module")
def upstream():
    with llama_server() as url:
        yield url


def test_upstream_mode_in_front_of_a_real_llama_cpp_server(upstream):
    with serve("--model", "openai/smollm2", "--base-url", upstream, "--rounds", "1", *TOKENS) as (
        base,
        _,
    ):
        r = client(base).chat.completions.create(
            model="openai/smollm2", messages=[{"role": "user", "content": "Is 91 prime?"}]
        )
        assert r.choices[0].message.content and len(r.model_extra["selfcorrect"]["turns"]) == 3
    # a checker model on the same kind of server gets --base-url too (not api.openai.com)
    checked = ("--check", "model:openai/smollm2")
    with serve("--model", "openai/smollm2", "--base-url", upstream, *checked, *TOKENS) as (base, _):
        r = client(base).chat.completions.create(
            model="openai/smollm2", messages=[{"role": "user", "content": "Is 91 prime?"}]
        )
        turns = r.model_extra["selfcorrect"]["turns"]
        assert [t["kind"] for t in turns] == ["answer", "check", "answer"]
        assert turns[1]["source"].startswith("checker") and turns[1]["content"]


def test_upstream_faults_are_retried_then_a_clear_5xx_never_an_empty_200(upstream):
    transient = [(503, {}, b"busy"), (500, {}, b"oops"), (200, {}, b"{malformed")]
    with (
        fault_proxy(upstream, transient) as (proxy, log),
        serve(
            "--model",
            "openai/smollm2",
            "--base-url",
            proxy,
            "--rounds",
            "0",
            *TOKENS,
            "--option",
            "backoff=0.01",
        ) as (base, _),
    ):
        r = client(base).chat.completions.create(  # three faults, then forwarded: retried
            model="openai/smollm2", messages=[{"role": "user", "content": "Hi"}]
        )
        assert r.choices[0].message.content and len(log) == 4
    dead = [(500, {}, b"down")] * 50
    with (
        fault_proxy(upstream, dead) as (proxy, _),
        serve(
            "--model",
            "openai/smollm2",
            "--base-url",
            proxy,
            "--rounds",
            "0",
            *TOKENS,
            "--option",
            "backoff=0.01",
            "--option",
            "max_retries=2",
        ) as (base, _),
    ):
        code, reply = post(
            base, json.dumps({"messages": [{"role": "user", "content": "x"}]}).encode()
        )
        assert code == 502 and "upstream" in reply["error"]["message"]
        assert "choices" not in reply


def test_sigterm_lets_in_flight_requests_finish(tmp_path):
    audit = tmp_path / "audit"
    with serve(
        "--model",
        "llamacpp/smollm2",
        "--rounds",
        "2",
        "--max-tokens",
        "48",
        "--check-max-tokens",
        "48",
        "--out",
        str(audit),
    ) as (base, proc):
        result: dict = {}

        def slow() -> None:
            result["r"] = post(
                base,
                json.dumps(
                    {"messages": [{"role": "user", "content": "Tell me about the sea."}]}
                ).encode(),
            )

        t = threading.Thread(target=slow)
        t.start()
        deadline = time.monotonic() + 60
        while (
            json.loads(urllib.request.urlopen(base + "/health", timeout=5).read())["in_flight"] == 0
        ):
            assert time.monotonic() < deadline
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        t.join(timeout=300)
        assert proc.wait(timeout=60) == 143  # SIGTERM's exit status, after a graceful stop
    code, body = result["r"]
    assert code == 200 and body["choices"][0]["message"]["content"]
    lines = (audit / "records.jsonl").read_bytes()
    assert lines.endswith(b"\n") and json.loads(lines.splitlines()[-1])["id"] == body["id"]


def test_audit_directory_renders_as_a_report(server, tmp_path):
    _, audit = server
    out = tmp_path / "r.html"
    subprocess.run(
        [sys.executable, "-m", "selfcorrect", "report", str(audit), "--out", str(out)],
        check=True,
        capture_output=True,
    )
    assert "Served requests" in out.read_text()
    assert Path(out).stat().st_size > 1000


def test_concurrent_sampled_requests_reach_the_upstream_together(upstream):
    """Sampled requests (each with its own seed, so each its own backend call) are not queued
    behind one another: the upstream sees them at the same time, and each answer is the one
    its seed gives when served alone."""
    from concurrent.futures import ThreadPoolExecutor

    from tests.servers import most_at_once

    seen: list[dict[str, object]] = []
    with (
        fault_proxy(upstream, [], seen) as (proxy, _),
        serve(
            "--model",
            "openai/smollm2",
            "--base-url",
            proxy,
            "--rounds",
            "1",
            *TOKENS,
            "--option",
            "prefill_mode=completions",
        ) as (base, _),
    ):
        c = client(base)

        def sampled(i: int):
            return c.chat.completions.create(
                model="openai/smollm2",
                messages=[{"role": "user", "content": f"Name a colour ({i})."}],
                temperature=0.8,
                seed=100 + i,
            )

        with ThreadPoolExecutor(4) as pool:
            replies = list(pool.map(sampled, range(4)))
        together = most_at_once(seen)
        alone = sampled(2)
    assert together >= 2, "the server sent its sampled requests one at a time"
    assert all(r.choices[0].message.content for r in replies)
    assert [r.model_extra["selfcorrect"]["seed"] for r in replies] == [100, 101, 102, 103]
    assert alone.choices[0].message.content == replies[2].choices[0].message.content
