"""Throughput and latency of `selfcorrect serve` against the same CaC work done in process.

For each concurrency c, the same N questions run twice, one after the other:

- direct: the engine in this process (`Scheduler`, at most c conversations in flight, a new
  one admitted as soon as one finishes), latency = admission to finish;
- served: `selfcorrect serve` (same model, same settings) in a subprocess, c client threads
  with the official `openai` client, latency = request sent to reply read.

Both sides run the same greedy CaC (1 round, self check) on the embedded model with the same
llama.cpp thread count, and the served answers are checked against the direct ones. Overhead
per request = served p50 latency - direct p50 latency at the same concurrency.

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

from selfcorrect.backends.base import GenParams, get_backend
from selfcorrect.cac.checks import SelfCheck
from selfcorrect.cac.conversation import Conversation
from selfcorrect.cac.engine import CaCConfig, Scheduler

TOKENS = 16


def questions(n: int) -> list[str]:
    topics = ["a prime number", "the sea", "a red fruit", "the moon", "a verb", "water", "Paris"]
    return [f"In one sentence, what is {topics[i % len(topics)]}? (#{i})" for i in range(n)]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def direct(qs: list[str], window: int, threads: int) -> dict:
    backend = get_backend("llamacpp/smollm2", n_threads=threads)
    params = GenParams(max_new_tokens=TOKENS)
    check = SelfCheck(params=params)
    config = CaCConfig(rounds=1, answer=params, reanswer=params)
    scheduler = Scheduler(backend)
    pending = list(enumerate(qs))
    admitted: dict[str, float] = {}
    latency: list[float] = []
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
            final = conv.final_answer()
            answers[int(conv.id)] = final.content if final else ""
    wall = time.perf_counter() - start
    return {"wall_s": wall, "latencies": latency, "answers": [answers[i] for i in range(len(qs))]}


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
            with lock:
                latency.append(time.perf_counter() - t0)
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
    proc = start_server(args.port, args.threads)
    try:
        for c in [int(x) for x in args.concurrency.split(",")]:
            d = direct(qs, c, args.threads)
            s = served(qs, c, args.port)
            same = sum(a == b for a, b in zip(d["answers"], s["answers"], strict=True))
            row = {
                "concurrency": c,
                "direct": summarise(d, args.n),
                "served": summarise(s, args.n),
                "served_failures": len(s["failures"]),
                "answers_identical": same,
            }
            row["throughput_ratio"] = round(
                row["served"]["requests_per_s"] / row["direct"]["requests_per_s"], 3
            )
            row["p50_overhead_ms"] = round(
                1000 * (row["served"]["p50_s"] - row["direct"]["p50_s"]), 1
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
