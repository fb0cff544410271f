"""AutoDAN's genetic algorithm (Liu et al. 2024) as the paper's official code runs it.

Per behaviour, with population size B (Vicuna 32, Llama-2 64 in the official scripts):

1. Reference pool: the protocol's initial "developer mode" prompt, 2B copies, each mutated once
   by synonym replacement; then the official string edits (``ChatGPT`` and ``chatGPT`` ->
   ``Assistant``, and `` [PROMPT]:`` appended). The first B are the population.
2. Each generation: score every prompt by the target model's cross-entropy on the target
   string, with the user turn assembled as ``"{prompt} {goal} "``; the best prompt so far is the
   population's argmin. The next generation is the ``int(0.1 B)`` elites (lowest loss) plus
   B - elites offspring: parents drawn by roulette-wheel selection (softmax of -loss), taken in
   pairs; each pair is crossed over with probability 0.5 (multi-point sentence crossover, up to
   5 points, each segment from either parent at random) into two children; then each offspring
   is mutated with probability 0.01.
3. The result is the best prompt of the last scored generation (elites carry over, so the best
   loss never rises), as ``"{prompt} {goal} "``.

Mutation (``mutation``): ``wordnet`` is the official synonym replacement (up to 10 random
non-stop-words, each replaced at its first occurrence by the first lemma of its first WordNet
synset); it needs ``nltk`` with the WordNet and stopwords data installed, which this offline
machine lacks. ``vocab`` (the offline fallback, and the default when WordNet is missing) replaces
up to 10 random non-stop-words with words drawn from the initial prompt's own vocabulary. The
original AutoDAN also paraphrases with GPT-4 (disabled in the official code too: ``API_key=None``).
Randomness comes from one seeded generator per behaviour.
"""

from __future__ import annotations

import math
import random
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from selfcorrect.datafiles import vendored

PRESETS = {
    "paper": {"steps": 100, "population": 32},
    "vicuna": {"steps": 100, "population": 32},
    "llama2": {"steps": 100, "population": 64},
    "small": {"steps": 3, "population": 8},
}
MUTATIONS = ("auto", "wordnet", "vocab")
# Names the official synonym step never replaces (lower-cased).
PROTECTED = {
    "llama2", "meta", "vicuna", "lmsys", "guanaco", "theblokeai", "wizardlm", "mpt-chat",
    "mosaicml", "mpt-instruct", "falcon", "tii", "chatgpt", "modelkeeper", "prompt",
}  # fmt: skip
# A short English stop-word list for the offline fallback (no nltk data).
_STOP_TEXT = (
    "a about above after again against all am an and any are as at be because been before "
    "being below between both but by can could did do does doing down during each few for "
    "from further had has have having he her here hers herself him himself his how i if in "
    "into is it its itself just me more most my myself no nor not now of off on once only or "
    "other our ours ourselves out over own same she should so some such than that the their "
    "theirs them themselves then there these they this those through to too under until up "
    "very was we were what when where which while who whom why will with would you your "
    "yours yourself"
)
STOP_WORDS = frozenset(_STOP_TEXT.split(" "))


@dataclass(frozen=True)
class AutoDANConfig:
    steps: int = 3
    population: int = 8
    elite_fraction: float = 0.1
    crossover: float = 0.5
    num_points: int = 5
    mutation_rate: float = 0.01
    mutation: str = "auto"  # auto: wordnet when available, else vocab
    seed: int = 0

    def __post_init__(self) -> None:
        if self.population < 2:
            raise ValueError(f"AutoDAN population must be >= 2, got {self.population}")
        if self.mutation not in MUTATIONS:
            raise ValueError(f"unknown AutoDAN mutation {self.mutation!r}: use {MUTATIONS}")

    @classmethod
    def preset(cls, name: str, **overrides: Any) -> AutoDANConfig:
        if name not in PRESETS:
            raise ValueError(f"unknown AutoDAN preset {name!r}; use {', '.join(PRESETS)}")
        return cls(**{**PRESETS[name], **overrides})


def initial_prompt() -> str:
    return vendored("protocol", "autodan_initial_prompt.txt").read_text().strip()


def official_edits(prompt: str) -> str:
    """The official code's edits to every reference prompt."""
    return prompt.replace("ChatGPT", "Assistant").replace("chatGPT", "Assistant") + " [PROMPT]:"


def assemble(prompt: str, goal: str) -> str:
    """The official user turn: ``"{prompt} {goal} "``."""
    return f"{prompt} {goal} "


def sentences(text: str) -> list[str]:
    return [s for s in re.split(r"(?<=[.!?])\s+", text) if s]


def crossover(a: str, b: str, points: int, rng: random.Random) -> tuple[str, str]:
    """Two children: cut both parents' sentence lists at up to `points` shared positions and
    give each segment to either child at random (as the official code, which draws cut points
    from ``range(1, m)`` with m = min sentence count - 1)."""
    sa, sb = sentences(a), sentences(b)
    m = min(len(sa), len(sb)) - 1
    cuts = sorted(rng.sample(range(1, m), min(points, m - 1))) if m > 1 else []
    c1: list[str] = []
    c2: list[str] = []
    last = 0
    for cut in [*cuts, None]:
        seg_a, seg_b = sa[last:cut], sb[last:cut]
        if rng.random() < 0.5:
            c1 += seg_a
            c2 += seg_b
        else:
            c1 += seg_b
            c2 += seg_a
        last = cut or 0
    return " ".join(c1), " ".join(c2)


def roulette(losses: list[float], k: int, rng: random.Random) -> list[int]:
    """k indices drawn with replacement, probability softmax(-loss) (the official selection)."""
    scores = [-x for x in losses]
    top = max(scores)
    weights = [math.exp(s - top) for s in scores]
    return rng.choices(range(len(losses)), weights=weights, k=k)


def _candidates(text: str) -> list[str]:
    return [
        w
        for w in re.findall(r"\w+(?:'\w+)?|[^\w\s]", text)
        if w.lower() not in STOP_WORDS and w.lower() not in PROTECTED and w[0].isalpha()
    ]


def wordnet_mutator() -> Callable[[str, random.Random], str]:
    """The official synonym replacement; raises ValueError when nltk or its data is missing."""
    try:
        import nltk  # type: ignore[import-not-found]
        from nltk.corpus import stopwords, wordnet  # type: ignore[import-not-found]

        stop = set(stopwords.words("english"))
        wordnet.synsets("test")
        nltk.word_tokenize("a test")
    except (ImportError, LookupError) as exc:
        raise ValueError(
            "AutoDAN's wordnet mutation needs nltk with the wordnet, stopwords and punkt_tab "
            f"data ({type(exc).__name__}); use --option mutation=vocab offline"
        ) from None

    def mutate(text: str, rng: random.Random) -> str:
        words = [
            w
            for w in nltk.word_tokenize(text)
            if w.lower() not in stop and w.lower() not in PROTECTED
        ]
        for word in rng.sample(words, min(10, len(words))):
            synsets = wordnet.synsets(word)
            if synsets and synsets[0].lemmas():
                text = text.replace(word, synsets[0].lemmas()[0].name(), 1)
        return text

    return mutate


def vocab_mutator(vocabulary: list[str]) -> Callable[[str, random.Random], str]:
    """Offline fallback: up to 10 random non-stop-words replaced (first occurrence) by words
    of `vocabulary`."""

    def mutate(text: str, rng: random.Random) -> str:
        words = _candidates(text)
        for word in rng.sample(words, min(10, len(words))):
            text = text.replace(word, rng.choice(vocabulary), 1)
        return text

    return mutate


def make_mutator(kind: str) -> tuple[str, Callable[[str, random.Random], str]]:
    if kind in ("auto", "wordnet"):
        try:
            return "wordnet", wordnet_mutator()
        except ValueError:
            if kind == "wordnet":
                raise
    vocabulary = sorted(set(_candidates(initial_prompt())))
    return "vocab", vocab_mutator(vocabulary)


class AutoDAN:
    def __init__(self, backend: Any, cfg: AutoDANConfig, context: tuple[Any, ...] = ()) -> None:
        self.backend, self.cfg, self.context = backend, cfg, tuple(context)
        self.mutation, self.mutate = make_mutator(cfg.mutation)

    def loss(self, prompts: list[str], goal: str, target: str) -> list[float]:
        """Target cross-entropy of each prompt, assembled as ``"{prompt} {goal} "``."""
        from selfcorrect.backends.base import Message

        tok, model = self.backend.tokenizer, self.backend.model
        tgt = tok(target, add_special_tokens=False)["input_ids"]
        out = []
        for p in prompts:
            chat = self.context + (Message("user", assemble(p, goal)),)
            prefix = tok(self.backend.prompt_text(chat), add_special_tokens=False)["input_ids"]
            ids = torch.tensor([prefix + tgt])
            with torch.no_grad():
                logits = model(input_ids=ids).logits[0, -len(tgt) - 1 : -1]
            out.append(float(torch.nn.functional.cross_entropy(logits, torch.tensor(tgt))))
        return out

    def reference(self, rng: random.Random) -> list[str]:
        base = initial_prompt()
        return [official_edits(self.mutate(base, rng)) for _ in range(2 * self.cfg.population)]

    def next_generation(
        self, population: list[str], losses: list[float], rng: random.Random
    ) -> list[str]:
        size = self.cfg.population
        n_elite = int(size * self.cfg.elite_fraction)
        order = sorted(range(len(population)), key=lambda i: losses[i])
        elites = [population[i] for i in order[:n_elite]]
        parents = [population[i] for i in roulette(losses, size - n_elite, rng)]
        offspring: list[str] = []
        for i in range(0, len(parents), 2):
            a = parents[i]
            b = parents[i + 1] if i + 1 < len(parents) else parents[0]
            if rng.random() < self.cfg.crossover:
                offspring += crossover(a, b, self.cfg.num_points, rng)
            else:
                offspring += [a, b]
        offspring = [
            self.mutate(o, rng) if rng.random() < self.cfg.mutation_rate else o for o in offspring
        ]
        return (elites + offspring)[:size]

    def attack(self, goal: str, target: str, log: Any = None) -> dict[str, Any]:
        rng = random.Random(f"{self.cfg.seed}:{goal}")
        population = self.reference(rng)[: self.cfg.population]
        history: list[float] = []
        best = population[0]
        for step in range(self.cfg.steps):
            losses = self.loss(population, goal, target)
            i = min(range(len(losses)), key=losses.__getitem__)
            best = population[i]
            history.append(losses[i])
            if log is not None:
                log(f"generation {step + 1}/{self.cfg.steps}: best target loss {losses[i]:.4f}")
            population = self.next_generation(population, losses, rng)
        return {
            "prompt": assemble(best, goal),
            "prefix": best,
            "losses": history,
            "mutation": self.mutation,
        }
