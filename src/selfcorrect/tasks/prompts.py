"""The task study's prompts, as named constants (fields in braces are substituted literally by
`selfcorrect.tasks.study`; data is never used as a format string).

Self-correction prompts follow Huang et al. (ICLR 2024, "Large Language Models Cannot
Self-Correct Reasoning Yet"), who took them from Kim et al. (2023, RCI): the review asks the
model to find problems with its answer, the re-ask to improve it and restate the final answer
in the task's format. Our answers are read after an answer cue ("The answer is", a prefill of
the assistant turn), so the scorers read the *first* answer after the cue (as Kojima et al.
2022 read zero-shot answers after their trigger) rather than Huang et al.'s ``\\boxed{}``.

Two prompt styles:

- ``direct``: the question and the answer format; the answer starts with the cue;
- ``cot``: the question and "think step by step" (Kojima et al. 2022); after the reasoning a
  follow-up asks for the final answer in the task's format, which starts with the cue (the
  engine's two-step answers: `CaCConfig.followup`).
"""

from __future__ import annotations

STYLES = ("direct", "cot")

ANSWER_CUE = "The answer is"

# the answer format, by the kind of answer the scorer reads
FORMAT = {
    "number": "Give the final answer as a single number.",
    "choice": "Answer with the letter of the correct choice.",
    "text": "Give a short final answer.",
}

# fields: {question}, {format}
DIRECT_TEMPLATE = "{question}\n{format}"
# fields: {question}
COT_TEMPLATE = "{question}\nLet's think step by step."
# fields: {format}
COT_FOLLOWUP = "So what is the final answer? {format}"

# fields: {question}, {options} (one "(A) text" line per option)
CHOICE_QUESTION = "{question}\nAnswer choices:\n{options}"

# Kim et al. 2023 / Huang et al. 2024, verbatim
REVIEW_PROMPT = "Review your previous answer and find problems with your answer."
# Huang et al. 2024's second step, with the format sentence of the task; field: {format}
REASK_TEMPLATE = "Based on the problems you found, improve your answer. {format}"
# the verdict check: "yes" means the answer is wrong
VERDICT_PROMPT = "Is your previous answer wrong? Answer yes or no."

# The llm:SPEC scorer's grading prompt. Fields: {question}, {reference}, {answer}. The reply
# must be exactly "correct" or "incorrect" (case and a final period ignored); anything else is
# unscored (counted as wrong, and reported).
LLM_GRADER_PROMPT = (
    "You are grading an answer to a question against the reference answer.\n\n"
    "Question: {question}\n"
    "Reference answer: {reference}\n"
    "Answer to grade: {answer}\n\n"
    "Does the answer to grade give the same final answer as the reference? "
    "Reply with exactly one word: correct or incorrect."
)
LLM_GRADER_TOKENS = 4

# Shown in records only: the turns an oracle-stopped conversation ends with when the ground
# truth accepts its answer. No model ever reads them (the conversation stops there).
