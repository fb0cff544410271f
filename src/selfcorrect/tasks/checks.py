"""The task study's verdict reader for free-text reviews.

The oracle-stopped check of Huang et al. (2024), which the task study and the BBQ ablation use,
is `selfcorrect.cac.checks.OracleStopCheck`.
"""

from __future__ import annotations

import re

from selfcorrect.cac.conversation import Verdict

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
