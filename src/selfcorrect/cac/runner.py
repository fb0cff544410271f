"""Run the engine over a study's samples, writing each sample's record the moment it finishes.

Samples already in ``records.jsonl`` are skipped. At most `window` conversations are in flight
(advanced together by the engine); each is written (and flushed) as soon as its last round is
done, and replaced by the next sample at once, so a crash or a dead server loses only the
samples still in flight. Samples whose conversation failed go to ``failures.jsonl`` and are
retried by the next run.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from selfcorrect.backends.base import Backend, BackendError
from selfcorrect.cac.checks import Check
from selfcorrect.cac.conversation import Conversation
from selfcorrect.cac.engine import CaCConfig, iter_cac
from selfcorrect.runs import RunDir

T = TypeVar("T")


@dataclass
class RunCounts:
    """What one call of `run_samples` did."""

    skipped: int = 0  # finished by an earlier run
    done: int = 0
    failed: int = 0
    wall_seconds: float = 0.0

    def as_dict(self) -> dict[str, float]:
        return {
            "skipped": self.skipped,
            "done": self.done,
            "failed": self.failed,
            "wall_seconds": round(self.wall_seconds, 3),
        }


def run_samples(
    run: RunDir,
    samples: Sequence[T],
    *,
    sample_id: Callable[[T], str],
    conversation: Callable[[T], Conversation],
    record: Callable[[T, Conversation], dict[str, Any]],
    backend: Backend,
    check: Check | None,
    config: CaCConfig,
    window: int = 16,
    progress: bool = True,
    fail_fast: bool = False,
) -> RunCounts:
    """Process the unfinished samples; returns what was skipped, done and failed."""
    from tqdm import tqdm

    if window < 1:
        raise ValueError(f"batch size must be >= 1, got {window}")
    finished = run.finished_ids()
    todo = {sample_id(s): s for s in samples if sample_id(s) not in finished}
    counts = RunCounts(skipped=len(samples) - len(todo))
    bar = tqdm(
        total=len(samples),
        initial=counts.skipped,
        disable=not progress,
        unit="q",
        dynamic_ncols=True,
    )
    start = time.perf_counter()

    def convs() -> Any:
        for sid, sample in todo.items():
            conv = conversation(sample)
            if conv.id != sid:
                raise ValueError(f"conversation id {conv.id!r} differs from sample id {sid!r}")
            yield conv

    try:
        for conv in iter_cac(backend, convs(), check, config, window=window):
            sample = todo[conv.id]
            if conv.error is not None:
                counts.failed += 1
                run.append({"id": conv.id, "error": conv.error}, failed=True)
                if fail_fast:
                    raise BackendError(f"--fail-fast: sample {conv.id} failed: {conv.error}")
            else:
                counts.done += 1
                run.append({"id": conv.id, **record(sample, conv)})
            bar.update(1)
    finally:
        counts.wall_seconds = time.perf_counter() - start
        bar.close()
    return counts


def is_model_call(turn: dict[str, Any]) -> bool:
    """A recorded turn that a model generated: the answerer's or a checker model's."""
    return turn["role"] == "assistant" and (
        turn["source"] == "model" or turn["source"].startswith("checker:")
    )


def token_totals(records: list[dict[str, Any]]) -> dict[str, float]:
    """Prompt, generated and reused tokens and summed request seconds of every model call
    (answerer and checker models alike) in the records."""
    turns = [t for r in records for t in r.get("turns", []) if is_model_call(t)]
    return {
        "prompt_tokens": sum(t["prompt_tokens"] for t in turns),
        "completion_tokens": sum(t["completion_tokens"] for t in turns),
        "cached_tokens": sum(t["cached_tokens"] for t in turns),
        # summed per-request time; with concurrent requests it exceeds the wall time
        "request_seconds": round(sum(t["seconds"] for t in turns), 3),
    }


def finish_study(
    run: RunDir, metrics: dict[str, Any], counts: RunCounts, *, report: bool
) -> dict[str, Any]:
    """Write metrics.json, close the run with its counts, render the report if asked."""
    run.write_json("metrics.json", metrics)
    run.finish(**counts.as_dict(), failed_total=metrics["failed"])
    if report:
        from selfcorrect.report import build_report

        build_report(run.path)
    return metrics
