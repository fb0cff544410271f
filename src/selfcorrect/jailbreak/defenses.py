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
from typing import Any

from selfcorrect.backends.base import Backend, Chat, Completion, GenParams, Message
from selfcorrect.cac.checks import HistoryDemos, NoCheck, SelfCheck, parse_yes_no
from selfcorrect.cac.engine import CaCConfig
from selfcorrect.datafiles import protocol

DEFENSES = "none, reminder, icd:N (1-3), cac:R, cac-history:R, smoothllm:N"


@dataclass
class Defense:
    name: str
    check: Any
    rounds: int = 0
    question_suffix: str = ""
    smooth_copies: int = 0


def parse_defense(spec: str) -> Defense:
    p = protocol()["jailbreak"]
    kind, _, arg = spec.partition(":")
    number = None
    if arg:
        try:
            number = int(arg)
        except ValueError:
            raise ValueError(f"{spec!r}: {kind} needs a whole number after the colon") from None
        if number < 1:
            raise ValueError(f"{spec!r}: the number must be >= 1")
    if kind == "none" and number is None:
        return Defense(spec, NoCheck())
    if kind == "reminder" and number is None:
        return Defense(spec, NoCheck(), question_suffix=p["self_reminder_suffix"])
    if kind == "icd" and number is not None:
        demos = [tuple(d) for d in p["icd_demos"]["vicuna"]]
        if number > len(demos):
            raise ValueError(f"{spec!r}: at most {len(demos)} in-context demos")
        return Defense(spec, HistoryDemos(demos=tuple(demos[:number])))  # type: ignore[arg-type]
    if kind == "cac" and number is not None:
        return Defense(
            spec,
            SelfCheck(verdict_parser=lambda t: parse_yes_no(t, yes_means="fail")),
            rounds=number,
        )
    if kind == "cac-history" and number is not None:
        demos = [tuple(d) for d in p["cac_history_demos"]]
        if 2 * number > len(demos):
            raise ValueError(
                f"{spec!r}: the protocol has demos for at most {len(demos) // 2} rounds"
            )
        return Defense(spec, HistoryDemos(demos=tuple(demos[: 2 * number])))  # type: ignore[arg-type]
    if kind == "smoothllm" and number is not None:
        return Defense(spec, NoCheck(), smooth_copies=number)
    raise ValueError(f"unknown defence {spec!r}; use one of: {DEFENSES}")


def cac_config(defense: Defense, check_prompt: str, max_new_tokens: int, seed: int) -> CaCConfig:
    params = GenParams(max_new_tokens=max_new_tokens, seed=seed)
    return CaCConfig(
        rounds=defense.rounds,
        check_prompt=check_prompt,
        reask_template="{question}",
        answer=params,
        check=params,
        reanswer=params,
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
