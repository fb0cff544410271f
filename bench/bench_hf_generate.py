"""Plain batched generation with the hf backend (no CaC): tokens/s at batch 32, 8 and 1.

.venv/bin/python bench/bench_hf_generate.py
"""

from __future__ import annotations

import time

from selfcorrect.backends.base import GenParams, chat, get_backend
from selfcorrect.bbq.data import load_bbq
from selfcorrect.bbq.prompts import question_text


def main() -> None:
    examples, _ = load_bbq("paper", limit_per_category=3)
    chats = [chat(("user", question_text(e))) for e in examples[:32]]
    backend = get_backend("hf/smollm2", batch_size=32)
    for batch, n in ((32, 32), (8, 32), (1, 4)):
        backend.batch_size = batch
        start = time.perf_counter()
        out = backend.generate(chats[:n], GenParams(max_new_tokens=32))
        seconds = time.perf_counter() - start
        tokens = sum(c.completion_tokens for c in out)
        print(f"batch {batch:2d}: {n} prompts, {tokens / seconds:6.1f} generated tokens/s")


if __name__ == "__main__":
    main()
