"""Defences, all run through the same CaC engine on the same adversarial prompts.

``none``; ``reminder`` (the self-reminder, Xie et al. 2023, appended to the system prompt as in
the official code; ``reminder:user`` appends it to the request instead); ``icd:N`` (in-context
defence with N refusal demos of the model family, Wei et al. 2023); ``cac:R`` (Check as Context,
R rounds, live self-checks with the chosen check prompt);
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
from selfcorrect.cac.conversation import Verdict
from selfcorrect.cac.engine import CaCConfig
from selfcorrect.datafiles import protocol
from selfcorrect.specs import parse

FAMILIES = ("auto", "vicuna", "llama2")

# Names for the official CHECK_PROMPTS list (Jailbreak/config.py), indexed as `--check-id`.
# Index 3 is the official list's fused string (a missing comma joins two prompts); its halves
# are reachable by name.
CHECK_PROMPT_NAMES = {
    "harmful-or-harmless": 0,
    "helpful-honest-harmless": 1,
    "harmful-offensive-illegal": 2,
    "determine-fused": 3,
    "illegal-unethical": 4,
}
CHECK_PROMPT_HALVES = {"determine": 3, "harmful-response": 4}  # indices into check_prompts_fixed


def check_prompts() -> list[str]:
    """The official CHECK_PROMPTS list, as the code defines it (5 entries)."""
    return list(protocol()["jailbreak"]["check_prompts"])


def resolve_check_prompt(spec: str) -> tuple[str, str]:
    """``(name, text)`` of a check prompt given by official index (``0``-``4``, ``--check-id``),
    by name (`CHECK_PROMPT_NAMES`, plus ``determine`` and ``harmful-response``), or as free text
    (anything containing a space). The default, ``0``, is the official default."""
    spec = spec.strip() or "0"
    official = check_prompts()
    names = {**CHECK_PROMPT_NAMES, **{k: -1 for k in CHECK_PROMPT_HALVES}}
    if spec.isdigit():
        i = int(spec)
        if i >= len(official):
            raise ValueError(
                f"--check-prompt {spec}: the protocol has check prompts 0-{len(official) - 1}"
            )
        name = next(k for k, v in CHECK_PROMPT_NAMES.items() if v == i)
        return name, official[i]
    if spec in CHECK_PROMPT_NAMES:
        return spec, official[CHECK_PROMPT_NAMES[spec]]
    if spec in CHECK_PROMPT_HALVES:
        return spec, protocol()["jailbreak"]["check_prompts_fixed"][CHECK_PROMPT_HALVES[spec]]
    if " " in spec:
        return "custom", spec
    raise ValueError(
        f"unknown check prompt {spec!r}: use an index 0-{len(official) - 1}, a name "
        f"({', '.join(names)}) or the prompt's text"
    )


def resolve_family(family: str, model: str) -> str:
    """The model family whose protocol values (ICD demos, system prompt) apply. ``auto``: llama2
    for a Llama-2 model name, else vicuna (the official code uses Vicuna's demos for every
    family without its own)."""
    if family not in FAMILIES:
        raise ValueError(f"unknown model family {family!r}: use {', '.join(FAMILIES)}")
    if family != "auto":
        return family
    flat = model.lower().replace("-", "").replace("_", "")
    return "llama2" if "llama2" in flat else "vicuna"


@dataclass(frozen=True)
class Defense:
    """How one defence changes the run: a reminder (system prompt or request), demos before the
    request, live self-checks (`rounds` of them), or SmoothLLM copies (a backend wrapper)."""

    name: str
    rounds: int = 0  # cac:R (live self-checks)
    question_suffix: str = ""  # reminder:user (the reminder after the request)
    system_suffix: str = ""  # reminder (the official: appended to the system prompt)
    demos: tuple[tuple[str, str], ...] = ()  # icd:N and cac-history:R (before the request)
    smooth_copies: int = 0

    def system(self, base: str | None) -> str | None:
        """The system prompt under this defence, given the model's own (None: the template's)."""
        if not self.system_suffix:
            return base
        return (base or "") + self.system_suffix if base else self.system_suffix.strip()


def parse_defense(spec: str, *, family: str = "vicuna") -> Defense:
    """A defence from its spec (`selfcorrect.specs`, family ``defense``); `family` picks the
    ICD demos."""
    p = protocol()["jailbreak"]
    parsed = parse("defense", spec)
    name, number = str(parsed), parsed.value
    if parsed.kind == "reminder":
        if parsed.value == "user":
            return Defense(name, question_suffix=p["self_reminder_suffix"])
        return Defense(name, system_suffix=p["self_reminder_suffix"])
    if parsed.kind == "icd":
        demos = [(str(q), str(a)) for q, a in p["icd_demos"][family]]
        if number > len(demos):
            raise ValueError(f"{spec!r}: at most {len(demos)} in-context demos for {family}")
        return Defense(name, demos=tuple(demos[:number]))
    if parsed.kind == "cac":
        return Defense(name, rounds=number)
    if parsed.kind == "cac-history":
        demos = [(str(q), str(a)) for q, a in p["cac_history_demos"]]
        if 2 * number > len(demos):
            raise ValueError(
                f"{spec!r}: the protocol has demos for at most {len(demos) // 2} rounds"
            )
        return Defense(name, demos=tuple(demos[: 2 * number]))
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


def cac_config(defense: Defense, params: GenParams) -> CaCConfig:
    """The request asked again as is after each check; every turn with the same decoding."""
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
