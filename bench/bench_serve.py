"""Throughput and latency of `selfcorrect serve` against the same CaC work done in process.

For each concurrency c, the same N questions run twice, one after the other (the order
alternates from one concurrency to the next, so neither side always goes first):

- direct: the engine in this process (`Scheduler`, at most c conversations in flight, a new
  one admitted as soon as one finishes), latency = admission to finish;
- served: `selfcorrect serve` (same model, same settings) in a subprocess, c client threads
  with the official `openai` client, latency = request sent to reply read.

Both sides run the same greedy CaC (1 round, self check) on the embedded model with the same
llama.cpp thread count, each with one backend kept for the whole run and warmed up on questions
that are not timed; the served answers are checked against the direct ones.

Overhead: the server reports the model time of each request (`selfcorrect.model_seconds`, the
wall time of the backend calls its turns came from); the direct side sums the same per turn.
Latency minus model time is what each side adds beyond the model (scheduling, and for the
server HTTP, JSON and the client); served minus direct at the p50 is the server's overhead.
That reads cleanly at concurrency 1. Above it, a served request that arrives while a step is
running waits for the next step boundary (the direct side admits its next question exactly at
one), so the difference there is mostly that wait; throughput is the measure at c > 1.

    .venv/bin/python bench/bench_serve.py --n 64 --concurrency 1,8,32,64 --out bench/results/serve.json
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
from pathlib import Path

from selfcorrect.backends.base import Backend, GenParams, get_backend
from selfcorrect.cac.checks import SelfCheck
from selfcorrect.cac.conversation import Conversation
from selfcorrect.cac.engine import CaCConfig, Scheduler

TOKENS = 16


def questions(n: int, tag: str = "#") -> list[str]:
    topics = ["a prime number", "the sea", "a red fruit", "the moon", "a verb", "water", "Paris"]
    return [f"In one sentence, what is {topics[i % len(topics)]}? ({tag}{i})" for i in range(n)]


def model_seconds(conv: Conversation) -> float:
    """Wall time of the backend calls this conversation's model turns came from."""
    return sum(t.batch_seconds for t in conv.generated())


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def direct(backend: Backend, qs: list[str], window: int) -> dict:
    params = GenParams(max_new_tokens=TOKENS)
    check = SelfCheck(params=params)
    config = CaCConfig(rounds=1, answer=params, reanswer=params)
    scheduler = Scheduler(backend)
    pending = list(enumerate(qs))
    admitted: dict[str, float] = {}
    latency: list[float] = []
    beyond: list[float] = []
    answers: dict[int, str] = {}
    start = time.perf_counter()
    while pending or scheduler.jobs:
        while pending and len(scheduler) < window:
            i, q = pending.pop(0)
            conv = Conversation(id=str(i), question=q)
            admitted[conv.id] = time.perf_counter()
            scheduler.add(conv, check, config)
        for conv in scheduler.step():
            latency.append(time.perf_counter() - admitted[conv.id])
            beyond.append(latency[-1] - model_seconds(conv))
            final = conv.final_answer()
            answers[int(conv.id)] = final.content if final else ""
    wall = time.perf_counter() - start
    return {
        "wall_s": wall,
        "latencies": latency,
        "beyond_model": beyond,
        "answers": [answers[i] for i in range(len(qs))],
        "failures": [],
    }


def start_server(port: int, threads: int) -> subprocess.Popen:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "selfcorrect",
            "serve",
            "--port",
            str(port),
            "--rounds",
            "1",
            "--max-tokens",
            str(TOKENS),
            "--check-max-tokens",
            str(TOKENS),
            "--max-in-flight",
            "64",
            "--option",
            f"n_threads={threads}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    for _ in range(600):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1).read()
            return proc
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError("server did not start")


def served(qs: list[str], concurrency: int, port: int) -> dict:
    import openai

    client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="none", max_retries=0)
    todo = list(enumerate(qs))
    lock = threading.Lock()
    latency: list[float] = []
    beyond: list[float] = []
    answers: dict[int, str] = {}
    failures: list[str] = []

    def worker() -> None:
        while True:
            with lock:
                if not todo:
                    return
                i, q = todo.pop(0)
            t0 = time.perf_counter()
            try:
                r = client.chat.completions.create(
                    model="llamacpp/smollm2",
                    messages=[{"role": "user", "content": q}],
                    max_tokens=TOKENS,
                    timeout=600,
                )
            except Exception as exc:  # counted, never silently dropped
                with lock:
                    failures.append(f"{i}: {exc}")
                continue
            took = time.perf_counter() - t0
            with lock:
                latency.append(took)
                beyond.append(took - r.model_extra["selfcorrect"]["model_seconds"])
                answers[i] = r.choices[0].message.content or ""

    start = time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    return {
        "wall_s": wall,
        "latencies": latency,
        "beyond_model": beyond,
        "answers": [answers.get(i) for i in range(len(qs))],
        "failures": failures,
    }


def summarise(run: dict, n: int) -> dict:
    lat = run["latencies"]
    return {
        "wall_s": round(run["wall_s"], 2),
        "requests_per_s": round(n / run["wall_s"], 3),
        "p50_s": round(percentile(lat, 0.5), 3),
        "p95_s": round(percentile(lat, 0.95), 3),
        "beyond_model_p50_ms": round(1000 * percentile(run["beyond_model"], 0.5), 2),
        "completed": len(lat),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=64)
    ap.add_argument("--concurrency", default="1,8,32,64")
    ap.add_argument("--threads", type=int, default=2, help="llama.cpp threads (both sides)")
    ap.add_argument("--port", type=int, default=8199)
    ap.add_argument("--out", type=Path, default=Path("bench/results/serve.json"))
    args = ap.parse_args()
    qs = questions(args.n)
    rows = []
    backend = get_backend("llamacpp/smollm2", n_threads=args.threads)
    proc = start_server(args.port, args.threads)
    try:
        warm = questions(4, tag="warm-up ")
        direct(backend, warm, 4)
        served(warm, 4, args.port)
        for k, c in enumerate(int(x) for x in args.concurrency.split(",")):
            order = ("direct", "served") if k % 2 == 0 else ("served", "direct")
            runs = {}
            for side in order:
                runs[side] = (
                    direct(backend, qs, c) if side == "direct" else served(qs, c, args.port)
                )
            d, s = runs["direct"], runs["served"]
            same = sum(a == b for a, b in zip(d["answers"], s["answers"], strict=True))
            row = {
                "concurrency": c,
                "first": order[0],
                "direct": summarise(d, args.n),
                "served": summarise(s, args.n),
                "served_failures": len(s["failures"]),
                "answers_identical": same,
            }
            row["throughput_ratio"] = round(
                row["served"]["requests_per_s"] / row["direct"]["requests_per_s"], 3
            )
            row["p50_latency_difference_ms"] = round(
                1000 * (row["served"]["p50_s"] - row["direct"]["p50_s"]), 1
            )
            row["p50_overhead_ms"] = round(
                row["served"]["beyond_model_p50_ms"] - row["direct"]["beyond_model_p50_ms"], 2
            )
            rows.append(row)
            print(json.dumps(row), flush=True)
    finally:
        proc.terminate()
        proc.wait(timeout=60)
    meta = {
        "n": args.n,
        "max_tokens": TOKENS,
        "rounds": 1,
        "llama_threads": args.threads,
        "cpus": os.cpu_count(),
        "load_avg_at_end": os.getloadavg(),
        "platform": platform.platform(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"meta": meta, "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
