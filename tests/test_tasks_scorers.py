"""Task scorers, the review-verdict reader and the self-consistency vote: pure functions on
hand-written answers with known readings."""

from __future__ import annotations

import pytest

from selfcorrect.backends.scripted import ScriptedBackend
from selfcorrect.specs import SpecError, parse
from selfcorrect.tasks.checks import review_verdict
from selfcorrect.tasks.consistency import choose_k, majority_vote
from selfcorrect.tasks.data import TaskItem, canonical_number, gsm8k_gold
from selfcorrect.tasks.scorers import (
    LLMScorer,
    Score,
    make_scorer,
    parse_grade,
    read_choice,
    read_number,
    score_choice,
    score_exact,
    score_numeric,
    score_regex,
    strip_cue,
)

EGGS = TaskItem("q", "How much does she make?", "18")
CSQA = TaskItem("c", "Where?", "B", ("bank", "library", "mall"), ("A", "B", "C"))


@pytest.mark.parametrize(
    ("text", "read"),
    [
        ("18, since 16 - 3 - 4 = 9 eggs", "18"),  # the first number, not the last
        ("$18 every day.", "18"),
        ("1,234.50 dollars", "1234.5"),
        ("-3.0", "-3"),
        ("2 or 3", "2"),
        ("a \\boxed{7}, not 5", "7"),
        ("18.", "18"),
        ("eighteen", None),
        ("", None),
    ],
)
def test_read_number_takes_the_first_number(text, read):
    assert read_number(text) == read


def test_numeric_score_compares_decimals_and_unscored_is_wrong():
    assert score_numeric("18.00 dollars", EGGS) == Score("18", True)
    assert score_numeric("9 eggs, so 18", EGGS) == Score("9", False)
    assert score_numeric("no idea", EGGS) == Score(None, False)
    assert not score_numeric("no idea", EGGS).scored


def test_gsm8k_gold_is_the_number_after_the_last_hashes():
    assert gsm8k_gold("She sells 9 eggs.\nShe makes 9 * 2 = $<<9*2=18>>18.\n#### 18") == "18"
    assert gsm8k_gold("#### 1,000") == "1000"
    assert gsm8k_gold("no marker 5") is None
    assert canonical_number("x") is None


@pytest.mark.parametrize(
    ("text", "label"),
    [
        ("(B) library", "B"),
        ("(b)", "B"),
        ("B", "B"),
        ("B. library", "B"),
        ("C) mall", "C"),
        ("the answer is C", "C"),
        ("option A", "A"),
        ("a library", "B"),  # "a" is an article: the option's text decides
        ("at the mall, not the bank", "C"),  # the first option named
        ("I don't know", None),
        ("", None),
    ],
)
def test_read_choice(text, label):
    assert read_choice(text, CSQA.labels, CSQA.choices) == label


def test_choice_score():
    assert score_choice("(B) library", CSQA) == Score("B", True)
    assert score_choice("(A) bank", CSQA) == Score("A", False)
    assert score_choice("nothing", CSQA) == Score(None, False)


def test_exact_reads_the_first_statement_squad_normalised():
    paris = TaskItem("p", "Capital of France?", "Paris")
    assert score_exact("The Paris. It is big.", paris) == Score("paris", True)
    assert score_exact("Paris is the capital", paris).correct is False
    assert score_exact("   ", paris) == Score(None, False)


def test_regex_uses_group_one_and_no_match_is_unscored():
    item = TaskItem("r", "q", "42")
    assert score_regex("so answer: 42 and answer: 7", item, r"answer: (\d+)") == Score("42", True)
    assert score_regex("answer: 42", item, r"\d+") == Score("42", True)
    assert score_regex("nothing", item, r"answer: (\d+)") == Score(None, False)


def test_strip_cue():
    assert strip_cue("The answer is: 18") == "18"
    assert strip_cue(" 18") == "18"


def test_scorer_specs():
    assert make_scorer("regex:answer: (\\d+)").score([("answer: 18", EGGS)]) == [Score("18", True)]
    with pytest.raises(SpecError, match="scorer 'regex:\\(': PATTERN must be a valid"):
        parse("scorer", "regex:(")
    with pytest.raises(SpecError, match="unknown scorer 'fuzzy': use exact, numeric"):
        parse("scorer", "fuzzy")


@pytest.mark.parametrize(
    ("reply", "grade"),
    [
        ("correct", True),
        (" Correct.", True),
        ("INCORRECT", False),
        ("incorrect.", False),
        ("It is correct", None),
        ("correct!", None),
        ("yes", None),
        ("", None),
    ],
)
def test_llm_grade_is_read_strictly(reply, grade):
    assert parse_grade(reply) is grade


def test_llm_scorer_asks_with_the_reference_and_reads_strictly():
    # the grader's replies are scripted: this tests the prompt and the strict parse
    grader = ScriptedBackend(replies=["correct", "I think it is correct", "incorrect"])
    scorer = LLMScorer(grader)
    scores = scorer.score([("(B) library", CSQA), ("18", EGGS), ("17", EGGS)])
    assert scores == [Score("b library", True), Score(None, False), Score("17", False)]
    prompt = grader.calls[0][0][-1].content
    assert "Reference answer: (B) library" in prompt and "Answer to grade: (B) library" in prompt


@pytest.mark.parametrize(
    ("review", "verdict"),
    [
        ("There are no mistakes in my answer.", "pass"),
        ("My answer is correct.", "pass"),
        ("My answer is incorrect: 9 * 2 is 18.", "fail"),
        ("I made a mistake.", "fail"),
        ("The answer is 18.", "unknown"),
    ],
)
def test_review_verdict(review, verdict):
    assert review_verdict(review) == verdict


def test_majority_vote_ties_go_to_the_first_and_unscored_do_not_vote():
    right, wrong, none = Score("18", True), Score("9", False), Score(None, False)
    assert majority_vote([wrong, right, right]) == right
    assert majority_vote([wrong, right]) == wrong  # tie: first seen
    assert majority_vote([none, none, right]) == right
    assert majority_vote([none]) == Score(None, False)


def test_choose_k_takes_the_closest_token_count():
    rows = [{"k": 1, "tokens_per_question": 10}, {"k": 2, "tokens_per_question": 21}]
    assert choose_k(rows, 14) == 1 and choose_k(rows, 17) == 2 and choose_k(rows, 15.5) == 1


def test_llm_scorer_never_reads_data_as_a_template():
    grader = ScriptedBackend(replies=["correct"])
    item = TaskItem("g", "What is {answer} of {reference}?", "18 {question}")
    LLMScorer(grader).score([("17 {reference}", item)])
    prompt = grader.calls[0][0][-1].content
    assert "Question: What is {answer} of {reference}?\n" in prompt
    assert "Reference answer: 18 {question}\nAnswer to grade: 17 {reference}\n" in prompt
