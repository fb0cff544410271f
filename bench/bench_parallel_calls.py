"""Sampled CaC conversations in front of an HTTP upstream: a step's calls one after another
(baseline) against all at once (candidate).

Each conversation samples with its own seed, as the server's sampled requests do, so each is
its own group in every step of the engine's `Scheduler`. Baseline: the groups are called one
after another (what the engine did before, and still does for in-process backends): set here
by giving the backend ``parallel_calls = 1``. Candidate: the engine's default for the openai
backend, up to ``concurrency`` calls at once. Same backend object, same conversations, same
seeds; the two alternate, baseline first on odd repeats.

Upstreams:

- ``llama``: `python -m llama_cpp.server` with the embedded model on 127.0.0.1. It evaluates
  one request at a time, so on this machine the gain can only come from overlapping the HTTP
  and scheduling time of one request with the model time of another.
- ``fixed``: a stand-in for a batching server (vLLM): every request is answered after the
  same delay (``--delay-ms``), however many are in flight. It shows what the engine's
  scheduling alone does to a server that serves concurrent requests at no extra cost; it is a
  model of such a server, not a measurement of vLLM.

    .venv/bin/python bench/bench_parallel_calls.py --n 32 --out bench/results/parallel_calls.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from selfcorrect.backends.base import GenParams, get_backend
from selfcorrect.cac.checks import SelfCheck
from selfcorrect.cac.conversation import Conversation
from selfcorrect.cac.engine import CaCConfig, Scheduler

TOKENS = 16


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def llama_upstream() -> Iterator[str]:
    from selfcorrect.backends.llamacpp import embedded_model_path

    port = free_port()
    cmd = [sys.executable, "-m", "llama_cpp.server", "--model", str(embedded_model_path())]
    cmd += ["--host", "127.0.0.1", "--port", str(port), "--n_ctx", "4096"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                urllib.request.urlopen(base + "/models", timeout=2).read()
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("llama_cpp.server did not start") from None
                time.sleep(0.3)
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=10)


class _Gauge:
    """Requests in flight at the fixed-delay upstream, and the most at once."""

    def __init__(self) -> None:
        self.lock, self.now, self.most = threading.Lock(), 0, 0

    def __enter__(self) -> None:
        with self.lock:
            self.now += 1
            self.most = max(self.most, self.now)

    def __exit__(self, *exc: object) -> None:
        with self.lock:
            self.now -= 1


@contextmanager
def fixed_upstream(delay: float, gauge: _Gauge) -> Iterator[str]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers.get("content-length", 0))))
            with gauge:
                time.sleep(delay)
            text = f" sampled with seed {body.get('seed')}"
            choice = {"index": 0, "text": text, "finish_reason": "stop", "logprobs": None}
            reply = {
                "id": "x",
                "object": "text_completion",
                "created": 0,
                "model": body.get("model", "m"),
                "choices": [choice],
                "usage": {"prompt_tokens": 1, "completion_tokens": 4, "total_tokens": 5},
            }
            data = json.dumps(reply).encode()
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    finally:
        server.shutdown()
        server.server_close()


def run(backend, n: int, parallel: bool, concurrency: int) -> tuple[float, dict[str, str]]:
    """All `n` conversations admitted at once; seconds until the last is finished, and the
    final answers by conversation."""
    backend.parallel_calls = concurrency if parallel else 1
    scheduler = Scheduler(backend)
    for i in range(n):
        params = GenParams(max_new_tokens=TOKENS, temperature=0.8, seed=1000 + i)
        check = SelfCheck(params=params)
        config = CaCConfig(rounds=1, answer=params, reanswer=params)
        scheduler.add(Conversation(id=str(i), question=f"Name a colour. ({i})"), check, config)
    start = time.perf_counter()
    answers = {}
    while scheduler.jobs:
        for conv in scheduler.step():
            if conv.error is not None:
                raise RuntimeError(conv.error)
            answers[conv.id] = conv.final_answer().content
    return time.perf_counter() - start, answers


def measure(name: str, base: str, args: argparse.Namespace, gauge: _Gauge | None) -> dict:
    backend = get_backend(
        "openai/smollm2",
        base_url=base,
        prefill_mode="completions",
        template="chatml",
        concurrency=args.concurrency,
    )
    run(backend, 4, True, args.concurrency)  # warm-up: connections, the model's first calls
    rows: dict[str, list[float]] = {"baseline": [], "candidate": []}
    most: dict[str, int] = {"baseline": 0, "candidate": 0}
    answers: dict[str, dict[str, str]] = {}
    for repeat in range(args.repeats):
        order = ["baseline", "candidate"] if repeat % 2 == 0 else ["candidate", "baseline"]
        for side in order:
            if gauge is not None:
                gauge.most = 0
            seconds, answers[side] = run(backend, args.n, side == "candidate", args.concurrency)
            rows[side].append(seconds)
            if gauge is not None:
                most[side] = max(most[side], gauge.most)
            print(f"{name} {side}: {seconds:.2f} s", flush=True)
    backend.close()
    best = {side: min(v) for side, v in rows.items()}
    same = sum(answers["baseline"][k] == answers["candidate"][k] for k in answers["baseline"])
    return {
        "upstream": name,
        "seconds": rows,
        "best_seconds": best,
        "conversations_per_second": {s: args.n / v for s, v in best.items()},
        "speedup_best": best["baseline"] / best["candidate"],
        "most_requests_at_once": most if gauge is not None else None,
        "identical_final_answers": f"{same}/{args.n}",
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=32, help="conversations, all at once")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--delay-ms", type=float, default=200.0)
    parser.add_argument("--upstreams", default="fixed,llama")
    parser.add_argument("--out", type=Path, default=Path("bench/results/parallel_calls.json"))
    args = parser.parse_args()
    results = []
    for name in args.upstreams.split(","):
        if name == "fixed":
            gauge = _Gauge()
            with fixed_upstream(args.delay_ms / 1000, gauge) as base:
                results.append(measure(name, base, args, gauge))
        elif name == "llama":
            with llama_upstream() as base:
                results.append(measure(name, base, args, None))
        else:
            raise SystemExit(f"unknown upstream {name!r}; use fixed and/or llama")
    out = {
        "n": args.n,
        "concurrency": args.concurrency,
        "repeats": args.repeats,
        "delay_ms": args.delay_ms,
        "tokens": TOKENS,
        "protocol": "1 round, self check, temperature 0.8, seed 1000 + i per conversation",
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "results": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
