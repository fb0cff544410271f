"""Run the engine over a study's samples in resumable batches, writing one record per sample.

Samples already in ``records.jsonl`` are skipped; each batch's records are appended (and
flushed) as soon as the batch finishes, so a killed run loses at most the batch in flight.
Samples whose conversation failed go to ``failures.jsonl`` and are retried by the next run.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from selfcorrect.backends.base import Backend, BackendError
from selfcorrect.cac.engine import CaCConfig, Conversation, run_cac
from selfcorrect.runs import RunDir

T = TypeVar("T")


def run_batches(
    run: RunDir,
    samples: Sequence[T],
    *,
    sample_id: Callable[[T], str],
    conversation: Callable[[T], Conversation],
    record: Callable[[T, Conversation], dict[str, Any]],
    backend: Backend,
    check: Any,
    config: CaCConfig,
    batch_size: int = 16,
    progress: bool = True,
    fail_fast: bool = False,
) -> dict[str, int]:
    """Process the unfinished samples; returns counts (done before, done now, failed now)."""
    from tqdm import tqdm

    if batch_size < 1:
        raise ValueError(f"batch size must be >= 1, got {batch_size}")
    finished = run.finished_ids()
    todo = [s for s in samples if sample_id(s) not in finished]
    counts = {"skipped": len(samples) - len(todo), "done": 0, "failed": 0}
    bar = tqdm(
        total=len(samples),
        initial=counts["skipped"],
        disable=not progress,
        unit="q",
        dynamic_ncols=True,
    )
    try:
        for start in range(0, len(todo), batch_size):
            batch = todo[start : start + batch_size]
            convs = [conversation(s) for s in batch]
            run_cac(backend, convs, check, config)
            for sample, conv in zip(batch, convs, strict=True):
                if conv.error is not None:
                    counts["failed"] += 1
                    run.append({"id": sample_id(sample), "error": conv.error}, failed=True)
                    if fail_fast:
                        raise BackendError(
                            f"--fail-fast: sample {sample_id(sample)} failed: {conv.error}"
                        )
                else:
                    counts["done"] += 1
                    run.append({"id": sample_id(sample), **record(sample, conv)})
            bar.update(len(batch))
    finally:
        bar.close()
    return counts
