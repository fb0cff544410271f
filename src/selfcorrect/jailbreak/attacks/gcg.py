"""Greedy Coordinate Gradient (Zou et al. 2023) on a white-box transformers model.

Per behaviour: an adversarial suffix after the goal is optimised so that the model's answer
starts with the target string ("Sure, here is ..."). Each step: the gradient of the target loss
with respect to a one-hot encoding of the suffix tokens (through the embedding matrix) gives the
top-k replacement tokens per position; a batch of candidates, each changing one position, is
scored with forward passes. Non-ASCII tokens are excluded. Two update rules (``update``):

- ``official`` (default; the official minimal-GCG code): candidate positions evenly spaced over
  the suffix (``arange(0, n, n / batch)``), candidates kept when their text differs from the
  current suffix and re-tokenises to as many tokens (the re-tokenised ids are scored), and the
  best candidate *always* replaces the suffix, even when its loss is higher;
- ``keep-best`` (this project's earlier rule): random positions, candidates kept only when their
  text re-tokenises to exactly the same ids, and the suffix changes only when the best candidate
  lowers the loss (the recorded loss never rises).

The attack optimises inside `context` (system prompt and demo turns: an adaptive attack on the
self-reminder or the in-context defence). A per-behaviour checkpoint (JSON) makes a long attack
resumable step by step.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

PRESETS = {
    "paper": {"steps": 100, "batch_size": 256, "topk": 256, "n_suffix": 20},
    "vicuna": {"steps": 100, "batch_size": 256, "topk": 256, "n_suffix": 20},
    "llama2": {"steps": 100, "batch_size": 256, "topk": 256, "n_suffix": 20},
    "small": {"steps": 8, "batch_size": 32, "topk": 64, "n_suffix": 8},
}
UPDATES = ("official", "keep-best")
MARKER = "\u2063SUFFIX\u2063"  # an invisible separator that never occurs in goals


@dataclass(frozen=True)
class GCGConfig:
    steps: int = 8
    batch_size: int = 32
    topk: int = 64
    n_suffix: int = 8
    seed: int = 0
    update: str = "official"

    def __post_init__(self) -> None:
        if self.update not in UPDATES:
            raise ValueError(f"unknown GCG update {self.update!r}: use {', '.join(UPDATES)}")

    @classmethod
    def preset(cls, name: str, **overrides: Any) -> GCGConfig:
        if name not in PRESETS:
            raise ValueError(f"unknown GCG preset {name!r}; use {', '.join(PRESETS)}")
        return cls(**{**PRESETS[name], **overrides})


class GCG:
    def __init__(self, backend: Any, cfg: GCGConfig, context: tuple[Any, ...] = ()) -> None:
        self.backend, self.cfg, self.context = backend, cfg, tuple(context)
        self.model, self.tok = backend.model, backend.tokenizer
        self.embed = self.model.get_input_embeddings().weight  # (V, e)
        self.allowed = self._ascii_tokens()  # (V,) bool

    def _ascii_tokens(self) -> torch.Tensor:
        vocab = self.embed.shape[0]
        ok = torch.zeros(vocab, dtype=torch.bool)
        special = set(self.tok.all_special_ids)
        for i in range(min(vocab, len(self.tok))):
            text = self.tok.decode([i])
            ok[i] = (
                i not in special and text.isascii() and text.isprintable() and text.strip() != ""
            )
        return ok

    def segments(self, goal: str, target: str) -> tuple[list[int], list[int], list[int]]:
        """Token ids before the suffix, after it (to the answer start), and of the target."""
        from selfcorrect.backends.base import Message

        text = self.backend.prompt_text(self.context + (Message("user", f"{goal} {MARKER}"),))
        before, after = text.split(MARKER)
        enc = lambda s: self.tok(s, add_special_tokens=False)["input_ids"]  # noqa: E731
        return enc(before), enc(after), enc(target)

    def losses(
        self, before: list[int], suffixes: torch.Tensor, after: list[int], target: list[int]
    ) -> torch.Tensor:
        """Target cross-entropy for each suffix row: (c,)."""
        c = suffixes.shape[0]
        ids = torch.cat(
            [
                torch.tensor(before).expand(c, -1),
                suffixes,
                torch.tensor(after + target).expand(c, -1),
            ],
            1,
        )
        with torch.no_grad():
            logits = self.model(input_ids=ids).logits  # (c, L, V)
        t = len(target)
        pred = logits[:, -t - 1 : -1]  # (c, t, V)
        return torch.nn.functional.cross_entropy(
            pred.transpose(1, 2), ids[:, -t:], reduction="none"
        ).mean(1)

    def gradient(
        self, before: list[int], suffix: torch.Tensor, after: list[int], target: list[int]
    ) -> torch.Tensor:
        """d loss / d one-hot(suffix): (n_suffix, V)."""
        one_hot = torch.zeros(len(suffix), self.embed.shape[0], dtype=self.embed.dtype)
        one_hot[torch.arange(len(suffix)), suffix] = 1.0
        one_hot.requires_grad_(True)
        e = self.embed.detach()
        embeds = torch.cat([e[torch.tensor(before)], one_hot @ e, e[torch.tensor(after + target)]])[
            None
        ]  # (1, L, e)
        logits = self.model(inputs_embeds=embeds).logits[0]  # (L, V)
        t = len(target)
        loss = torch.nn.functional.cross_entropy(logits[-t - 1 : -1], torch.tensor(target))
        (grad,) = torch.autograd.grad(loss, one_hot)
        return grad

    def candidates(
        self, suffix: torch.Tensor, grad: torch.Tensor, gen: torch.Generator
    ) -> torch.Tensor:
        """Candidate suffixes (rows) from the gradient, per the configured update rule."""
        grad = grad.masked_fill(~self.allowed[None, : grad.shape[1]], float("inf"))
        top = (-grad).topk(self.cfg.topk, dim=1).indices  # (n_suffix, k)
        c = self.cfg.batch_size
        pos = self.positions(len(suffix), gen)
        pick = torch.randint(0, self.cfg.topk, (c,), generator=gen)
        cand = suffix.expand(c, -1).clone()
        cand[torch.arange(c), pos] = top[pos, pick]
        return self._filter(suffix, cand)

    def positions(self, n: int, gen: torch.Generator) -> torch.Tensor:
        """The suffix position each candidate changes: (batch,)."""
        c = self.cfg.batch_size
        if self.cfg.update == "official":  # evenly spaced, as the official sample_control
            return torch.arange(0, n, n / c).to(torch.int64)[:c]
        return torch.randint(0, n, (c,), generator=gen)

    def _filter(self, suffix: torch.Tensor, cand: torch.Tensor) -> torch.Tensor:
        enc = lambda s: self.tok(s, add_special_tokens=False)["input_ids"]  # noqa: E731
        if self.cfg.update == "official":
            # The official filter: text differs from the current suffix and re-tokenises to as
            # many tokens; the re-tokenised ids are what gets scored.
            current = self.tok.decode(suffix, skip_special_tokens=True)
            rows = []
            for i in range(len(cand)):
                text = self.tok.decode(cand[i], skip_special_tokens=True)
                ids = enc(text)
                if text != current and len(ids) == len(suffix):
                    rows.append(ids)
            return torch.tensor(rows) if rows else suffix[None]
        keep = [i for i in range(len(cand)) if enc(self.tok.decode(cand[i])) == cand[i].tolist()]
        return cand[keep] if keep else suffix[None]

    def attack(self, goal: str, target: str, checkpoint: Path, log: Any = None) -> dict[str, Any]:
        """Run (or resume) the attack on one behaviour; returns the suffix and the loss history."""
        before, after, tgt = self.segments(goal, target)
        state: dict[str, Any]
        if checkpoint.exists():
            state = json.loads(checkpoint.read_text())
        else:
            init = self.tok(" ".join(["!"] * self.cfg.n_suffix), add_special_tokens=False)[
                "input_ids"
            ]
            suffix0 = torch.tensor(init[: self.cfg.n_suffix])
            loss0 = float(self.losses(before, suffix0[None], after, tgt)[0])
            state = {
                "suffix_ids": suffix0.tolist(),
                "step": 0,
                "losses": [loss0],
                "config": asdict(self.cfg),
            }
        gen = torch.Generator().manual_seed(self.cfg.seed + state["step"])
        while state["step"] < self.cfg.steps:
            suffix = torch.tensor(state["suffix_ids"])
            cand = self.candidates(suffix, self.gradient(before, suffix, after, tgt), gen)
            losses = torch.cat(
                [self.losses(before, cand[i : i + 64], after, tgt) for i in range(0, len(cand), 64)]
            )
            best = int(losses.argmin())
            if self.cfg.update == "official":  # always take the best candidate
                state["suffix_ids"] = cand[best].tolist()
                state["losses"].append(float(losses[best]))
            else:
                if float(losses[best]) < state["losses"][-1]:
                    state["suffix_ids"] = cand[best].tolist()
                state["losses"].append(min(float(losses[best]), state["losses"][-1]))
            state["step"] += 1
            tmp = checkpoint.with_suffix(".tmp")
            tmp.write_text(json.dumps(state))
            tmp.replace(checkpoint)
            if log is not None:
                log(f"step {state['step']}/{self.cfg.steps}: target loss {state['losses'][-1]:.4f}")
        state["suffix"] = self.tok.decode(state["suffix_ids"])
        return state
