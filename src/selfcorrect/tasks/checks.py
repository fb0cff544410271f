"""The task study's own check pieces: a verdict reader for free-text reviews, and the
oracle-stopped check of Huang et al. (2024).

Oracle-stopped self-correction (Huang et al., ICLR 2024, section 3, on the setting of Kim et al.
2023 and Shinn et al. 2023): the ground truth decides only *when to stop*; the model keeps
seeing its own review, never the truth. `OracleStopCheck` does exactly that: for an answer the
ground truth accepts it returns a passing verdict and no text the model could read (the engine's
``first_accepted`` policy then ends the conversation with that answer); for any other answer it
returns the review check's own result (the model's review goes into the context) with the
oracle's "fail" verdict. This differs from the paper's ``oracle:0`` check (`OracleCheck`),
whose text "My previous answer is wrong." tells the model its answer is wrong: that is
feedback, not just stopping, and the task study offers it as a separate mode (``oracle-check``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from selfcorrect.backends.base import Backend
from selfcorrect.cac.checks import Check, CheckResult
from selfcorrect.cac.conversation import Conversation, Verdict
from selfcorrect.tasks.prompts import ORACLE_STOP_PROMPT, ORACLE_STOP_TEXT

# earliest phrase wins; at one position the alternatives are tried in order, so "no mistakes"
# (pass) is read before "mistakes" (fail) could match later in the text
_REVIEW = re.compile(
    r"\b(?:(?P<passing>no (?:problems?|mistakes?|errors?|issues?)|not (?:wrong|incorrect)"
    r"|(?:is|was|seems|looks) (?:correct|right|accurate))"
    r"|(?P<failing>incorrect|wrong|mistakes?|errors?|not (?:correct|right|accurate)))\b"
)


def review_verdict(text: str) -> Verdict:
    """A verdict read from a free-text review by keywords (a heuristic, like the BBQ study's):
    the first of "no problems/mistakes/errors", "is correct"... (pass) or "incorrect", "wrong",
    "mistake", "error", "not correct"... (fail); "unknown" when the review says neither."""
    match = _REVIEW.search(text.lower())
    if match is None:
        return "unknown"
    return "pass" if match.group("passing") else "fail"


@dataclass(frozen=True)
class OracleStopCheck:
    """Stop when the ground truth accepts the latest answer; otherwise check it with `review`
    (whose text stays in context, with the verdict "fail"). Use with
    ``CaCConfig(final_policy="first_accepted")``.

    `is_correct(conversation, answer_text)` is the only way the truth reaches it (as for
    `OracleCheck`); it is asked about the conversation's *latest* answer.

    Example::

        OracleStopCheck(review=SelfCheck(), is_correct=lambda conv, text: key[conv.id] in text)
    """

    review: Check
    is_correct: Callable[[Conversation, str], bool]
    name: str = "oracle-stopped"

    def check(
        self, backend: Backend, conversations: Sequence[Conversation], round: int
    ) -> list[CheckResult]:
        right = [self.is_correct(c, c.answers()[-1].content) for c in conversations]
        wrong = [c for c, ok in zip(conversations, right, strict=True) if not ok]
        reviews = iter(self.review.check(backend, wrong, round) if wrong else [])
        out = []
        for ok in right:
            if ok:
                out.append(
                    CheckResult(ORACLE_STOP_PROMPT, ORACLE_STOP_TEXT, "pass", source="oracle")
                )
                continue
            result = next(reviews)
            out.append(result if result.error else replace(result, verdict="fail"))
        return out
