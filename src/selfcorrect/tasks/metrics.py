"""Task metrics: pure functions over task records (records.jsonl lines as dicts).

A record's ``rounds`` hold one entry per answer (round 0 = the first answer) with ``correct``
and ``extracted`` (None: the scorer could not read it; counted as wrong). A conversation that
stopped early (``stopped_at``) keeps its accepted answer in later rounds, so round r is always
"the answer after at most r rounds". ``checks`` hold one entry per check, with its verdict.
``tokens`` holds the generated tokens of each round (round r: the check before answer r plus
answer r, with any reasoning and follow-up).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from selfcorrect.bbq.metrics import wilson_interval
from selfcorrect.cac.checks import verdict_by_oracle_stop

Record = Mapping[str, Any]


def answer_at(record: Record, r: int) -> Mapping[str, Any]:
    """The round-r answer; after an early stop, the last (accepted) answer."""
    rounds = record["rounds"]
    return rounds[min(r, len(rounds) - 1)]


def _ci(ci: tuple[float, float] | None) -> list[float] | None:
    return None if ci is None else [ci[0], ci[1]]


def round_summary(records: Sequence[Record], r: int) -> dict[str, Any]:
    """Accuracy (Wilson 95% interval, Wilson 1927) and the unscored share of round-r answers;
    an unscored answer counts as wrong."""
    n = len(records)
    right = sum(bool(answer_at(x, r)["correct"]) for x in records)
    unscored = sum(answer_at(x, r)["extracted"] is None for x in records)
    return {
        "round": r,
        "n": n,
        "correct": right,
        "accuracy": right / n if n else None,
        "accuracy_ci95": _ci(wilson_interval(right, n)),
        "unscored": unscored,
        "unscored_rate": unscored / n if n else None,
        "unscored_ci95": _ci(wilson_interval(unscored, n)),
    }


def flips(records: Sequence[Record], r: int) -> dict[str, Any]:
    """How answers changed from round r-1 to round r: wrong->right (corrected), right->wrong
    (broken), stayed right, stayed wrong (Huang et al. 2024, Figure 1's categories)."""
    out = {
        "round": r,
        "wrong_to_right": 0,
        "right_to_wrong": 0,
        "stayed_right": 0,
        "stayed_wrong": 0,
    }
    for x in records:
        before, after = bool(answer_at(x, r - 1)["correct"]), bool(answer_at(x, r)["correct"])
        key = (
            ("stayed_right" if after else "right_to_wrong")
            if before
            else ("wrong_to_right" if after else "stayed_wrong")
        )
        out[key] += 1
    return out


def check_accuracy(records: Sequence[Record], r: int) -> dict[str, Any]:
    """How often the round-r check was right about the answer it checked (round r-1): a pass
    of a right answer or a fail of a wrong one. Checks without a readable verdict are counted
    as ``n_unknown`` and left out, as are verdicts the ground truth gave (oracle-stopped runs:
    they are not the check's); accuracy is None when no check was judged."""
    judged = correct = unknown = 0
    for x in records:
        check = next((c for c in x.get("checks", ()) if c["round"] == r), None)
        if check is None or verdict_by_oracle_stop(check.get("source")):
            continue
        if check.get("verdict") not in ("pass", "fail"):
            unknown += 1
            continue
        judged += 1
        previous_right = bool(x["rounds"][r - 1]["correct"])
        correct += (check["verdict"] == "pass") == previous_right
    return {
        "round": r,
        "n": judged,
        "n_unknown": unknown,
        "accuracy": correct / judged if judged else None,
        "ci95": _ci(wilson_interval(correct, judged)),
    }


def token_summary(records: Sequence[Record], rounds: int) -> list[dict[str, Any]]:
    """Generated tokens per question in each round (mean over all questions; a stopped
    conversation generates 0 in later rounds) and cumulated up to each round: the compute
    axis of the equal-compute comparison."""
    n = len(records)
    rows, total = [], 0.0
    for r in range(rounds + 1):
        answer = sum(_tokens(x, r)["answer"] for x in records)
        check = sum(_tokens(x, r)["check"] for x in records)
        mean = (answer + check) / n if n else 0.0
        total += mean
        rows.append(
            {
                "round": r,
                "answer_tokens_mean": answer / n if n else 0.0,
                "check_tokens_mean": check / n if n else 0.0,
                "generated_mean": mean,
                "cumulative_mean": total,
                "active": sum(len(x["rounds"]) > r for x in records),
            }
        )
    return rows


def _tokens(record: Record, r: int) -> Mapping[str, int]:
    per = record.get("tokens") or []
    return per[r] if r < len(per) else {"answer": 0, "check": 0}


def compute_metrics(records: Sequence[Record], rounds: int) -> dict[str, Any]:
    """metrics.json of a task run: per-round accuracy and unscored share, flips and check
    accuracy per round, generated tokens per question per round, and how many stopped early."""
    per_round = [round_summary(records, r) for r in range(rounds + 1)] if records else []
    return {
        "n": len(records),
        "rounds": rounds,
        "per_round": per_round,
        "final": per_round[-1] if per_round else None,
        "flips": [flips(records, r) for r in range(1, rounds + 1)] if records else [],
        "check_accuracy": [check_accuracy(records, r) for r in range(1, rounds + 1)],
        "tokens_per_question": token_summary(records, rounds) if records else [],
        "stopped_early": sum(x.get("stopped_at") is not None for x in records),
    }
