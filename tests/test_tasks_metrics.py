"""Task metrics on hand-built records with hand-computed answers."""

from __future__ import annotations

import pytest

from selfcorrect.tasks.metrics import check_accuracy, compute_metrics, flips, round_summary


def _rec(correct, extracted=None, checks=(), tokens=(), stopped_at=None):
    extracted = extracted or ["x"] * len(correct)
    return {
        "rounds": [
            {"round": r, "correct": c, "extracted": e}
            for r, (c, e) in enumerate(zip(correct, extracted))
        ],
        "checks": [{"round": r + 1, "verdict": v} for r, v in enumerate(checks)],
        "tokens": [{"answer": a, "check": c} for a, c in tokens],
        "stopped_at": stopped_at,
    }


RECORDS = [
    _rec([False, True], checks=["fail"], tokens=[(10, 0), (10, 20)]),  # fixed; check right
    _rec([True, False], checks=["fail"], tokens=[(10, 0), (10, 20)]),  # broken; check wrong
    _rec([True, True], checks=["pass"], tokens=[(10, 0), (10, 20)]),  # stayed right; check right
    _rec([False, False], [None, None], checks=["unknown"], tokens=[(10, 0), (10, 20)]),
]


def test_accuracy_counts_unscored_as_wrong_with_a_wilson_interval():
    r0 = round_summary(RECORDS, 0)
    assert (r0["correct"], r0["accuracy"], r0["unscored"], r0["unscored_rate"]) == (2, 0.5, 1, 0.25)
    lo, hi = r0["accuracy_ci95"]
    assert lo == pytest.approx(0.1500, abs=1e-4) and hi == pytest.approx(0.8500, abs=1e-4)


def test_flips_go_the_right_way():
    assert flips(RECORDS, 1) == {
        "round": 1,
        "wrong_to_right": 1,
        "right_to_wrong": 1,
        "stayed_right": 1,
        "stayed_wrong": 1,
    }
    only_fixed = flips([_rec([False, True])], 1)
    assert only_fixed["wrong_to_right"] == 1 and only_fixed["right_to_wrong"] == 0


def test_check_accuracy_judges_the_previous_answer_and_leaves_out_unknowns():
    c = check_accuracy(RECORDS, 1)
    assert (c["n"], c["n_unknown"], c["accuracy"]) == (3, 1, pytest.approx(2 / 3))
    # a failed wrong answer that the next round fixes: the check was right
    fixed = [_rec([False, True], checks=["fail"]), _rec([False, False], checks=["pass"])]
    assert check_accuracy(fixed, 1)["accuracy"] == 0.5


def test_a_stopped_conversation_keeps_its_accepted_answer_and_generates_nothing_more():
    stopped = _rec(
        [False, True], checks=["fail", "pass"], tokens=[(10, 0), (5, 20), (0, 0)], stopped_at=1
    )
    m = compute_metrics(
        [stopped, _rec([False, False, True], tokens=[(10, 0), (5, 20), (5, 20)])], 2
    )
    assert [r["accuracy"] for r in m["per_round"]] == [0.0, 0.5, 1.0]
    assert m["stopped_early"] == 1
    assert [f["wrong_to_right"] for f in m["flips"]] == [1, 1]
    tokens = m["tokens_per_question"]
    assert [t["generated_mean"] for t in tokens] == [10.0, 25.0, 12.5]
    assert [t["cumulative_mean"] for t in tokens] == [10.0, 35.0, 47.5]
    assert [t["active"] for t in tokens] == [2, 2, 1]


def test_no_records():
    m = compute_metrics([], 1)
    assert m["n"] == 0 and m["per_round"] == [] and m["final"] is None
