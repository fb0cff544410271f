"""CaC engine benchmarks behind BENCHMARKS.md (not run by CI).

    .venv/bin/python bench/bench_cac.py [--n 50] [--out bench/results/cac.json]

On the same 50 BBQ questions (paper subset, seeded), one round of self-check CaC:
1. hf backend on the embedded GGUF: engine batch 50 with backend batch 32, vs one question at a
   time (engine batch 1, backend batch 1); throughput in generated tokens per second.
2. llama.cpp backend: wall time of the engine vs the time spent inside llama.cpp generation
   (engine overhead), and prompt tokens evaluated per turn kind with and without prefix reuse.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

from selfcorrect.backends.base import get_backend
from selfcorrect.bbq.data import load_bbq
from selfcorrect.bbq.study import BBQConfig, cac_config, make_bbq_check, make_conversation
from selfcorrect.cac.engine import run_cac

TOKENS = dict(answer_tokens=32, check_tokens=64, reanswer_tokens=10)


def questions(n: int):
    examples, _ = load_bbq("paper", limit_per_category=5, seed=0)
    return examples[:n]


def run(backend, examples, engine_batch: int):
    cfg = BBQConfig(rounds=1, **TOKENS)
    config, check = cac_config(cfg), make_bbq_check(cfg, [])
    convs = []
    start = time.perf_counter()
    for i in range(0, len(examples), engine_batch):
        batch = [make_conversation(e, "question") for e in examples[i : i + engine_batch]]
        run_cac(backend, batch, check, config)
        convs += batch
    wall = time.perf_counter() - start
    turns = [t for c in convs for t in c.turns if t.role == "assistant"]
    return convs, wall, turns


def summary(wall, turns):
    generated = sum(t.completion_tokens for t in turns)
    by_kind: dict[str, dict[str, int]] = {}
    for t in turns:
        key = f"{t.kind}@{t.round}"
        row = by_kind.setdefault(key, {"prompt_tokens": 0, "evaluated": 0, "turns": 0})
        row["prompt_tokens"] += t.prompt_tokens
        row["evaluated"] += t.prompt_tokens - t.cached_tokens
        row["turns"] += 1
    return {
        "wall_s": round(wall, 2),
        "generated_tokens": generated,
        "tokens_per_s": round(generated / wall, 1),
        "inside_backend_s": round(sum(t.seconds for t in turns), 2),
        "prompt_tokens_by_turn": by_kind,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=50)
    parser.add_argument("--batch-size", type=int, default=50, help="hf backend batch")
    parser.add_argument("--out", default="bench/results/cac.json")
    args = parser.parse_args()
    examples = questions(args.n)
    results: dict[str, object] = {
        "machine": f"{platform.machine()} {platform.processor()}",
        "n": len(examples),
    }

    hf_batched = get_backend("hf/smollm2", batch_size=args.batch_size)
    convs_b, wall, turns = run(hf_batched, examples, engine_batch=len(examples))
    results["hf_batched"] = summary(wall, turns)
    hf_single = get_backend("hf/smollm2", batch_size=1)
    convs_s, wall, turns = run(hf_single, examples, engine_batch=1)
    results["hf_one_at_a_time"] = summary(wall, turns)
    results["hf_speedup"] = round(
        results["hf_batched"]["tokens_per_s"] / results["hf_one_at_a_time"]["tokens_per_s"], 2
    )
    same = sum(
        [t.content for t in a.turns] == [t.content for t in b.turns]
        for a, b in zip(convs_b, convs_s)
    )
    results["hf_identical_conversations"] = same

    for label, cache_mb in (("llamacpp_reuse", 2048), ("llamacpp_no_reuse", 0)):
        backend = get_backend("llamacpp/smollm2", cache_mb=cache_mb)
        _, wall, turns = run(backend, examples, engine_batch=16)
        row = summary(wall, turns)
        row["engine_overhead"] = round(1 - row["inside_backend_s"] / row["wall_s"], 4)
        results[label] = row

    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
