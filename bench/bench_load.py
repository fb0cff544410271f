"""Load on the OpenAI-compatible backend against a real local llama.cpp server (loopback only).

    .venv/bin/python bench/bench_load.py [--requests 64]

For concurrency 1, 8, 32 and 64: the same bounded batch of requests, wall time, throughput,
errors, requests sent (no duplicates), results returned (none lost) and the client's peak RSS.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from selfcorrect.backends.base import GenParams, chat, get_backend  # noqa: E402
from servers import llama_server  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=64)
    parser.add_argument("--out", default="bench/results/load.json")
    args = parser.parse_args()
    chats = [
        chat(("user", f"Give one word that rhymes with number {i}.")) for i in range(args.requests)
    ]
    rows = []
    with llama_server() as url:
        for concurrency in (1, 8, 32, 64):
            backend = get_backend(
                "openai/smollm2",
                base_url=url,
                prefill_mode="completions",
                concurrency=concurrency,
                timeout=300.0,
            )
            start = time.perf_counter()
            out = backend.generate(chats, GenParams(max_new_tokens=16))
            wall = time.perf_counter() - start
            rows.append(
                {
                    "concurrency": concurrency,
                    "requests": len(chats),
                    "returned": len(out),
                    "http_requests_sent": backend.requests,
                    "errors": sum(c.error is not None for c in out),
                    "wall_s": round(wall, 2),
                    "requests_per_s": round(len(chats) / wall, 2),
                    "generated_tokens_per_s": round(
                        sum(c.completion_tokens for c in out) / wall, 1
                    ),
                    "client_peak_rss_mb": round(
                        resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1
                    ),
                }
            )
            print(rows[-1], flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
