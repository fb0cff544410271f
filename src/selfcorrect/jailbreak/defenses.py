"""Defences, all run through the same CaC engine on the same adversarial prompts.

``none``; ``reminder`` (the self-reminder suffix, Xie et al. 2023); ``icd:N`` (in-context defence
with N refusal demos, Wei et al. 2023); ``cac:R`` (Check as Context, R rounds, live self-checks);
``cac-history:R`` (the paper's "backup" variant: 2R pre-written demo turns, no live check);
``smoothllm:N`` (Robey et al. 2023: N randomly perturbed copies, majority vote of a refusal check),
implemented as a backend wrapper.
"""

from __future__ import annotations

import random
import string
from collections.abc import Sequence
from dataclasses import dataclass, field

from selfcorrect.backends.base import Backend, Chat, Completion, GenParams, Message
from selfcorrect.cac.checks import Check, SelfCheck, parse_yes_no
from selfcorrect.cac.engine import CaCConfig, Verdict
from selfcorrect.datafiles import protocol
from selfcorrect.specs import parse


@dataclass(frozen=True)
class Defense:
    """How one defence changes the run: demos before the question, a suffix, live self-checks
    (`rounds` of them), or SmoothLLM copies (a backend wrapper)."""

    name: str
    rounds: int = 0
    demos: tuple[tuple[str, str], ...] = ()
    question_suffix: str = ""
    smooth_copies: int = 0


def parse_defense(spec: str) -> Defense:
    """A `Defense` from its spec (see `selfcorrect.specs`: ``defense`` family)."""
    p = protocol()["jailbreak"]
    parsed = parse("defense", spec)
    name, number = str(parsed), parsed.value
    if parsed.kind == "reminder":
        return Defense(name, question_suffix=p["self_reminder_suffix"])
    if parsed.kind == "icd":
        demos = tuple((str(u), str(a)) for u, a in p["icd_demos"]["vicuna"])
        return Defense(name, demos=demos[:number])
    if parsed.kind == "cac":
        return Defense(name, rounds=number)
    if parsed.kind == "cac-history":
        demos = tuple((str(u), str(a)) for u, a in p["cac_history_demos"])
        return Defense(name, demos=demos[: 2 * number])
    if parsed.kind == "smoothllm":
        return Defense(name, smooth_copies=number)
    return Defense(name)


def _harmful_if_yes(text: str) -> Verdict:
    return parse_yes_no(text, yes_means="fail")


def defense_check(defense: Defense, check_prompt: str, params: GenParams) -> Check | None:
    """The live self-check of a ``cac:R`` defence (None for the others)."""
    if not defense.rounds:
        return None
    return SelfCheck(prompt=check_prompt, parser=_harmful_if_yes, params=params)


def cac_config(defense: Defense, max_new_tokens: int, seed: int) -> CaCConfig:
    params = GenParams(max_new_tokens=max_new_tokens, seed=seed)
    return CaCConfig(
        rounds=defense.rounds,
        reask_template="{question}",
        answer=params,
        reanswer=params,
        demos=defense.demos,
    )


def perturb(text: str, rate: float, rng: random.Random) -> str:
    """SmoothLLM's random swap perturbation: each character replaced with probability `rate`."""
    alphabet = string.printable[:-5]
    return "".join(rng.choice(alphabet) if rng.random() < rate else ch for ch in text)


@dataclass
class SmoothLLMBackend:
    """Wraps a backend: N perturbed copies of the last user message, majority vote on refusal."""

    inner: Backend
    copies: int
    refusals: Sequence[str]
    rate: float = 0.1
    seed: int = 0
    name: str = field(init=False)

    def __post_init__(self) -> None:
        self.name = f"smoothllm:{self.copies}({self.inner.name})"

    def generate(self, chats: Sequence[Chat], params: GenParams) -> list[Completion]:
        expanded: list[Chat] = []
        for c in chats:
            last = c[-1]
            rng = random.Random(f"{self.seed}:{last.content}")
            for _ in range(self.copies):
                expanded.append(
                    c[:-1] + (Message(last.role, perturb(last.content, self.rate, rng)),)
                )
        outs = self.inner.generate(expanded, params)
        result = []
        for i in range(len(chats)):
            group = outs[i * self.copies : (i + 1) * self.copies]
            refused = [any(s in o.text for s in self.refusals) for o in group]
            majority = sum(refused) * 2 > len(group)
            result.append(next(o for o, r in zip(group, refused, strict=True) if r == majority))
        return result
