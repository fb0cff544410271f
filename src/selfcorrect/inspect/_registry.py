"""What Inspect AI loads through the ``inspect_ai`` entry point: importing the modules below
registers ``selfcorrect/cac``, ``selfcorrect/answer``, ``selfcorrect/demos``, ``selfcorrect/bbq``,
``selfcorrect/advbench``, the scorers and their metrics, and the ``selfcorrect`` model provider."""

from __future__ import annotations

from inspect_ai.model import ModelAPI, modelapi

from selfcorrect.inspect.scorers import asr_rounds, bbq_grader, bbq_rounds, jailbreak_judge
from selfcorrect.inspect.solver import answer, cac
from selfcorrect.inspect.tasks import advbench, bbq, demos


@modelapi(name="selfcorrect")
def selfcorrect() -> type[ModelAPI]:
    """``--model selfcorrect/<selfcorrect model spec>``: Check as Context inside generate."""
    from selfcorrect.inspect.provider import CaCModelAPI

    return CaCModelAPI


__all__ = [
    "advbench",
    "answer",
    "asr_rounds",
    "bbq",
    "bbq_grader",
    "bbq_rounds",
    "cac",
    "demos",
    "jailbreak_judge",
    "selfcorrect",
]
