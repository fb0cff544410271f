"""Self-consistency at the same token budget: the baseline a self-correction method must beat.

Self-consistency (Wang et al., ICLR 2023) samples k answers and keeps the most common one. Here
each sample is the task's first answer (same prompt, same token limit) drawn with temperature
sampling; sample i of every question uses the seed ``1000 * seed + i``, so with the llama.cpp
backend and OpenAI-compatible servers (one seed per request) samples do not depend on batching or
on a resumed run. The hf backend seeds torch once per batch, so its samples depend on which
questions share a batch (``--batch-size 1`` makes them independent of it). The vote counts what
the scorer read from each answer (a number, an option label, a normalised text); unscored
samples do not vote; a tie goes to the value that appeared first; a question with no scored
sample is unscored (wrong).

Equal compute (Huang et al. 2024, section 5, compare self-correction with self-consistency at
equal inference cost): with a target of T generated tokens per question (a CaC run's mean over
all rounds, checks included), samples are drawn one index at a time until their mean cumulated
tokens per question reach T (at most `max_k`), and k is the number of samples whose cumulated
tokens are closest to T. Accuracy is reported for every k drawn, against its tokens.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from selfcorrect.backends.base import Backend, GenParams
from selfcorrect.cac.conversation import Conversation
from selfcorrect.cac.engine import CaCConfig
from selfcorrect.cac.runner import RunCounts, run_samples
from selfcorrect.runs import RunDir
from selfcorrect.specs import plain
from selfcorrect.tasks import prompts as P
from selfcorrect.tasks.data import TaskItem
from selfcorrect.tasks.metrics import _ci, wilson_interval
from selfcorrect.tasks.scorers import Score, Scorer, strip_cue
from selfcorrect.tasks.study import (
    TaskConfig,
    load_items,
    make_backends,
    question_text,
    run_inputs,
)


@dataclass(frozen=True)
class SCConfig:
    """Self-consistency for `task`'s questions and prompt: `k` samples, or (k None) as many as
    match a token target, at most `max_k`."""

    task: TaskConfig
    temperature: float = 0.7
    top_p: float = 1.0
    max_k: int = 16
    k: int | None = None

    def __post_init__(self) -> None:
        if self.temperature <= 0:
            raise ValueError(
                f"self-consistency needs sampling: temperature > 0, got {self.temperature}"
            )
        if self.max_k < 1 or (self.k is not None and not 1 <= self.k <= self.max_k):
            raise ValueError(f"need 1 <= k <= max-k ({self.max_k}), got k = {self.k}")


def sample_seed(seed: int, i: int) -> int:
    """The sampling seed of sample i (the same for every question)."""
    return 1000 * seed + i


def majority_vote(samples: Sequence[Score]) -> Score:
    """The most common scored value among `samples` (ties: the one that appeared first) and
    whether it is right; unscored when no sample was scored."""
    counts: dict[str, int] = {}
    right: dict[str, bool] = {}
    for s in samples:
        if s.extracted is None:
            continue
        counts[s.extracted] = counts.get(s.extracted, 0) + 1
        right.setdefault(s.extracted, s.correct)
    if not counts:
        return Score(None, False)
    best = max(counts.values())
    winner = next(v for v in counts if counts[v] == best)  # dicts keep first-seen order
    return Score(winner, right[winner])


def curve(
    records: Sequence[dict[str, Any]], question_ids: Sequence[str], k_max: int
) -> list[dict[str, Any]]:
    """For k = 1..k_max: majority-vote accuracy over the questions (Wilson 95% interval), the
    unscored share, and the mean generated tokens per question of the first k samples."""
    by_question: dict[str, dict[int, dict[str, Any]]] = {q: {} for q in question_ids}
    for r in records:
        if r["question_id"] in by_question:
            by_question[r["question_id"]][r["sample"]] = r
    n = len(question_ids)
    rows = []
    for k in range(1, k_max + 1):
        right = unscored = 0
        tokens = 0
        for samples in by_question.values():
            first = [samples[i] for i in range(k) if i in samples]
            vote = majority_vote([Score(s["extracted"], s["correct"]) for s in first])
            right += vote.correct
            unscored += vote.extracted is None
            tokens += sum(s["generated_tokens"] for s in first)
        rows.append(
            {
                "k": k,
                "n": n,
                "accuracy": right / n if n else None,
                "accuracy_ci95": _ci(wilson_interval(right, n)),
                "unscored_rate": unscored / n if n else None,
                "tokens_per_question": tokens / n if n else 0.0,
            }
        )
    return rows


def choose_k(rows: Sequence[dict[str, Any]], target: float) -> int:
    """The k whose mean generated tokens per question are closest to `target` (ties: smaller k)."""
    return min(rows, key=lambda row: (abs(row["tokens_per_question"] - target), row["k"]))["k"]


def _sample_id(item: TaskItem, *, i: int) -> str:
    return f"{item.id}#s{i}"


def _conversation(item: TaskItem, *, i: int, task: TaskConfig) -> Conversation:
    return Conversation(
        id=_sample_id(item, i=i), question=question_text(item, task.prompt, task.kind)
    )


def _record(item: TaskItem, conv: Conversation, *, i: int, scorer: Scorer) -> dict[str, Any]:
    """One sample's line: the question id, sample index, answer, what the scorer read."""
    answer = conv.answers()[-1]
    [score] = scorer.score([(strip_cue(answer.content), item)])
    return {
        "question_id": item.id,
        "sample": i,
        "answer_text": answer.content,
        "extracted": score.extracted,
        "correct": score.correct,
        "generated_tokens": sum(
            t.completion_tokens for t in conv.turns if t.role == "assistant" and t.source == "model"
        ),
        "turns": [t.to_dict() for t in conv.turns],
    }


def _config(cfg: SCConfig, i: int) -> CaCConfig:
    task = cfg.task
    params = GenParams(
        max_new_tokens=task.answer_tokens,
        temperature=cfg.temperature,
        top_p=cfg.top_p,
        seed=sample_seed(task.seed, i),
        prefill=P.ANSWER_CUE if task.prompt == "direct" else "",
    )
    return CaCConfig(
        rounds=0,
        answer=params,
        followup=P.COT_FOLLOWUP.replace("{format}", P.FORMAT[task.kind])
        if task.prompt == "cot"
        else None,
        followup_params=GenParams(
            max_new_tokens=task.followup_tokens,
            temperature=cfg.temperature,
            top_p=cfg.top_p,
            seed=sample_seed(task.seed, i),
            prefill=P.ANSWER_CUE,
        ),
    )


def run_self_consistency(
    cfg: SCConfig,
    out: str | Path,
    *,
    target_tokens: float | None = None,
    backend: Backend | None = None,
    progress: bool = True,
    plots: bool = True,
    fail_fast: bool = False,
) -> dict[str, Any]:
    """Draw (or resume) the samples into `out` and write metrics.json: the accuracy curve over
    k, the chosen k (fixed, or matched to `target_tokens`) and its row. `fail_fast` stops at
    the first failed sample (`BackendError`)."""
    if cfg.k is None and target_tokens is None:
        raise ValueError("self-consistency needs k or a token target to match")
    task = cfg.task
    items, problems = load_items(task)
    backend, scorer = make_backends(task, backend)
    run = RunDir.open(
        out,
        study="task-sc",
        config=plain(cfg),
        model=task.model,
        seed=task.seed,
        inputs=run_inputs(task),
    )
    ids = [item.id for item in items]
    total = RunCounts()
    drawn = 0
    for i in range(cfg.k or cfg.max_k):
        counts = run_samples(
            run,
            items,
            sample_id=partial(_sample_id, i=i),
            conversation=partial(_conversation, i=i, task=task),
            record=partial(_record, i=i, scorer=scorer),
            backend=backend,
            check=None,
            config=_config(cfg, i),
            window=task.batch_size,
            progress=progress,
            fail_fast=fail_fast,
        )
        total.skipped += counts.skipped
        total.done += counts.done
        total.failed += counts.failed
        total.wall_seconds += counts.wall_seconds
        drawn = i + 1
        if cfg.k is None and target_tokens is not None:
            row = curve(run.records(), ids, drawn)[-1]
            if row["tokens_per_question"] >= target_tokens:
                break
    rows = curve(run.records(), ids, drawn)
    k = cfg.k if cfg.k is not None else choose_k(rows, target_tokens or 0.0)
    wanted = {f"{q}#s{i}" for q in ids for i in range(drawn)}
    done = {r["id"] for r in run.records()}
    metrics = {
        "n": len(items),
        "temperature": cfg.temperature,
        "top_p": cfg.top_p,
        "k": k,
        "k_drawn": drawn,
        "target_tokens_per_question": target_tokens,
        "chosen": rows[k - 1],
        "curve": rows,
        "failed": len(wanted - done),
        "data_problems": problems,
        "wall_seconds": round(total.wall_seconds, 3),
    }
    run.write_json("metrics.json", metrics)
    run.finish(**total.as_dict())
    if plots:
        from selfcorrect.report import build_report

        build_report(run.path)
    return metrics
