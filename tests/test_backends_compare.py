"""`selfcorrect compare-backends` and the turn-by-turn comparison behind it."""

from __future__ import annotations

import subprocess
import sys
from types import SimpleNamespace as NS

from selfcorrect.backends.base import Message
from selfcorrect.backends.compare import first_difference


def _conv(*turns, error=None):
    return NS(
        id="c1",
        error=error,
        turns=[NS(role=r, content=c, kind=k, round=0) for r, k, c in turns],
    )


Q = ("user", "question", "Q")
A = ("assistant", "answer", "The answer is (a).")


def test_first_difference_tells_prompt_text_length_and_error_apart():
    same = _conv(Q, A)
    assert first_difference(same, _conv(Q, A)) is None
    other = first_difference(same, _conv(Q, ("assistant", "answer", "The answer is (b).")))
    assert (other.turn, other.what, other.b) == (1, "text", "The answer is (b).")
    key = (Message("user", "Q"),)
    prompt = first_difference(same, _conv(Q, A), {key: "h1"}, {key: "h2"})
    assert (prompt.turn, prompt.what) == (1, "prompt")
    longer = first_difference(_conv(Q, A, Q), same)
    assert (longer.turn, longer.what) == (2, "length")
    failed = first_difference(same, _conv(Q, A, error="HTTP 500"))
    assert failed.what == "error" and failed.b == "HTTP 500"


def _compare(*args):
    return subprocess.run(
        [sys.executable, "-m", "selfcorrect", "compare-backends", *args],
        capture_output=True,
        text=True,
        timeout=600,
    )


SMALL = ["-k", "2", "--rounds", "1", "--max-new-tokens", "6", "--check-max-new-tokens", "6"]


def test_compare_backends_reports_identical_runs():
    out = _compare(
        "--model-a", "llamacpp/smollm2", "--model-b", "llamacpp/smollm2",
        "--option-b", "cache_mb=0", *SMALL,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "2 of 2 conversation(s) identical" in out.stdout
    assert "identical (6 turns)" in out.stdout and "identical (7 turns)" in out.stdout


def test_compare_backends_names_the_first_differing_turn():
    out = _compare(
        "--model-a", "llamacpp/smollm2", "--model-b", "llamacpp/smollm2",
        "--option-b", "template=chatml", *SMALL,
    )  # fmt: skip
    assert out.returncode == 1, out.stderr
    # plain ChatML lacks SmolLM2's default system prompt: the first answer's prompt differs
    assert "first difference at turn 1 (round 0, answer): prompt" in out.stdout
    assert "B: llamacpp/smollm2 (template: builtin:chatml)" in out.stdout
    assert "1 of 2 conversation(s) identical" in out.stdout  # with a system prompt: the same
