"""AutoDAN-style genetic search (Liu et al. 2024), compact: a population of prompt prototypes
grown from the protocol's initial "developer mode" prompt, scored by the target model's loss on
the target string, with elite selection, sentence-level multi-point crossover and word-level
mutation. (The original also paraphrases with an LLM; this version mutates with words drawn
from the population itself, so it needs no second model.)"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from typing import Any

import torch

from selfcorrect.datafiles import vendored

PRESETS = {
    "paper": {
        "steps": 100,
        "population": 64,
        "elite_fraction": 0.1,
        "crossover": 0.5,
        "num_points": 5,
        "mutation": 0.01,
    },
    "small": {
        "steps": 3,
        "population": 8,
        "elite_fraction": 0.25,
        "crossover": 0.5,
        "num_points": 3,
        "mutation": 0.05,
    },
}


@dataclass(frozen=True)
class AutoDANConfig:
    steps: int = 3
    population: int = 8
    elite_fraction: float = 0.25
    crossover: float = 0.5
    num_points: int = 3
    mutation: float = 0.05
    seed: int = 0

    @classmethod
    def preset(cls, name: str, **overrides: Any) -> AutoDANConfig:
        if name not in PRESETS:
            raise ValueError(f"unknown AutoDAN preset {name!r}; use {', '.join(PRESETS)}")
        return cls(**{**PRESETS[name], **overrides})


def initial_prompt() -> str:
    return vendored("protocol", "autodan_initial_prompt.txt").read_text().strip()


def _sentences(text: str) -> list[str]:
    return [s for s in re.split(r"(?<=[.!?])\s+", text) if s]


def _crossover(a: str, b: str, points: int, rng: random.Random) -> str:
    sa, sb = _sentences(a), _sentences(b)
    n = min(len(sa), len(sb))
    if n < 2:
        return a
    cuts = sorted(rng.sample(range(1, n), min(points, n - 1)))
    out, take_a, last = [], True, 0
    for cut in cuts + [n]:
        out += (sa if take_a else sb)[last:cut]
        take_a, last = not take_a, cut
    return " ".join(out)


def _mutate(text: str, words: list[str], rate: float, rng: random.Random) -> str:
    return " ".join(rng.choice(words) if rng.random() < rate else w for w in text.split(" "))


class AutoDAN:
    def __init__(self, backend: Any, cfg: AutoDANConfig) -> None:
        self.backend, self.cfg = backend, cfg

    def loss(self, prompts: list[str], target: str) -> list[float]:
        from selfcorrect.backends.base import chat

        tok, model = self.backend.tokenizer, self.backend.model
        out = []
        for p in prompts:
            prefix = tok(self.backend.prompt_text(chat(("user", p))), add_special_tokens=False)[
                "input_ids"
            ]
            tgt = tok(target, add_special_tokens=False)["input_ids"]
            ids = torch.tensor([prefix + tgt])
            with torch.no_grad():
                logits = model(input_ids=ids).logits[0, -len(tgt) - 1 : -1]
            out.append(float(torch.nn.functional.cross_entropy(logits, torch.tensor(tgt))))
        return out

    def attack(self, goal: str, target: str, log: Any = None) -> dict[str, Any]:
        rng = random.Random(self.cfg.seed)
        base = initial_prompt()
        words = base.split(" ")
        population = [base] + [
            _mutate(base, words, 0.05, rng) for _ in range(self.cfg.population - 1)
        ]
        history = []
        best_prompt, best_loss = base, float("inf")
        for step in range(self.cfg.steps + 1):
            scores = self.loss([f"{p}\n{goal}" for p in population], target)
            ranked = sorted(zip(scores, population, strict=True), key=lambda x: x[0])
            if ranked[0][0] < best_loss:
                best_loss, best_prompt = ranked[0]
            history.append(best_loss)
            if log is not None:
                log(f"generation {step}/{self.cfg.steps}: best target loss {best_loss:.4f}")
            if step == self.cfg.steps:
                break
            n_elite = max(1, int(self.cfg.elite_fraction * len(population)))
            elite = [p for _, p in ranked[:n_elite]]
            parents = [p for _, p in ranked[: max(2, len(ranked) // 2)]]
            children: list[str] = []
            while len(elite) + len(children) < self.cfg.population:
                a, b = rng.sample(parents, 2)
                child = (
                    _crossover(a, b, self.cfg.num_points, rng)
                    if rng.random() < self.cfg.crossover
                    else a
                )
                children.append(_mutate(child, words, self.cfg.mutation, rng))
            population = elite + children
        return {"prompt": f"{best_prompt}\n{goal}", "losses": history}
