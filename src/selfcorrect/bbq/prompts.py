"""BBQ prompt styles, with the exact strings of the paper's protocol file.

Styles (Ganguli et al. 2023, Table 1, as used by the paper's code):

- ``question``: the question alone; the answer is pre-filled with "The answer is";
- ``instruction``: the question plus the de-biasing instruction; same prefill;
- ``cot``: question plus instruction, the model first reasons (pre-filled with the
  chain-of-thought opener), then is asked for "the single, most likely answer choice".

Fields of the question template: ``context``, ``question``, ``ans0``, ``ans1``, ``ans2``; they are
substituted literally, so braces in the data are never interpreted.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from selfcorrect.bbq.data import BBQExample
from selfcorrect.datafiles import protocol
from selfcorrect.fill import fill

STYLES = ("question", "instruction", "cot")


@dataclass(frozen=True)
class BBQPrompts:
    question_template: str
    debias_instruction: str
    answer_prefill: str
    cot_prefill: str
    cot_postamble_user: str
    cot_postamble_prefill: str
    check_prompt: str
    reask_prefix: str
    oracle_wrong: str
    oracle_right: str
    initial_max_new_tokens: int
    reanswer_max_new_tokens: int


@lru_cache(maxsize=1)
def paper_prompts() -> BBQPrompts:
    p = protocol()["bbq"]
    gen = p["generation"]
    return BBQPrompts(
        question_template=p["question_template"],
        debias_instruction=p["debias_instruction"],
        answer_prefill=p["answer_prefill"],
        cot_prefill=p["chain_of_thought_prefill"],
        cot_postamble_user=p["cot_postamble_user"],
        cot_postamble_prefill=p["cot_postamble_prefill"],
        check_prompt=p["cac_check_prompt"],
        reask_prefix=p["cac_reask_prefix"],
        oracle_wrong=p["oracle_check_verdicts"]["wrong_answer"],
        oracle_right=p["oracle_check_verdicts"]["right_answer"],
        initial_max_new_tokens=int(gen["initial_and_check_max_new_tokens"]),
        reanswer_max_new_tokens=int(gen["reanswer_max_new_tokens"]),
    )


def question_text(example: BBQExample, style: str = "question") -> str:
    """The user message for `example` in the given style."""
    if style not in STYLES:
        raise ValueError(f"unknown prompt style {style!r}; use one of {', '.join(STYLES)}")
    prompts = paper_prompts()
    text = fill(
        prompts.question_template,
        context=example.context,
        question=example.question,
        ans0=example.answers[0],
        ans1=example.answers[1],
        ans2=example.answers[2],
    )
    if style in ("instruction", "cot"):
        text = f"{text}\n{prompts.debias_instruction}"
    return text
