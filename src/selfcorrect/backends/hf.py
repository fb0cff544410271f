"""In-process transformers backend: batched generation with left padding.

``hf/<hub id or local path>`` loads a checkpoint; ``hf/smollm2`` and ``hf/<file.gguf>`` load a GGUF
through transformers (dequantised), so this backend is tested on the embedded model. Chats are
rendered by `selfcorrect.backends.render` (the tokenizer's chat template unless ``template=`` or
``preset=`` says otherwise; a model without one falls back to ChatML with a warning), and every
decoding field of `GenParams` is passed to ``generate`` explicitly, so nothing from the model's
``generation_config`` (say, a repetition penalty) or transformers' defaults (top-k 50) leaks in.
Loading the embedded GGUF renders the same prompt text as ``llamacpp/smollm2`` (tested); its
greedy texts can still differ, because transformers dequantises the weights to float and
computes in PyTorch, while llama.cpp computes with the quantised weights. ``trust_remote_code``
is off unless asked for.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from selfcorrect.backends.base import (
    Chat,
    Completion,
    GenParams,
    ModelSpecError,
    sha256_text,
    with_batch_seconds,
)
from selfcorrect.backends.render import ModelTokens, TemplateError, make_renderer

DTYPES = ("auto", "float32", "bfloat16", "float16")


def _locate(model: str) -> tuple[str, str | None]:
    """(directory or hub id, gguf file name or None)."""
    from selfcorrect.backends.llamacpp import EMBEDDED_MODELS, embedded_model_path

    if model in EMBEDDED_MODELS:
        path = embedded_model_path(model)
        return str(path.parent), path.name
    if model.endswith(".gguf"):
        path = Path(model).expanduser()
        if not path.is_file():
            raise ModelSpecError(f"hf/{model}: no such file {path}")
        return str(path.parent), path.name
    if ".." in Path(model).parts:
        raise ModelSpecError(f"hf/{model}: relative paths with '..' are not accepted")
    return model, None


class HFBackend:
    def __init__(
        self,
        model: str,
        *,
        device: str = "cpu",
        dtype: str = "auto",
        template: str | None = None,
        batch_size: int = 16,
        trust_remote_code: bool = False,
        system: str | None = None,
        preset: str | None = None,
        eos_after_prefill: bool | None = None,
    ) -> None:
        try:
            import torch
            from transformers import AutoModelForCausalLM, AutoTokenizer
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise ModelSpecError(
                "the hf backend needs transformers: pip install 'selfcorrect[hf]'"
            ) from exc
        if dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.name = f"hf/{model}"
        self._calls = threading.Lock()
        self.batch_size = batch_size
        self.device = device
        where, gguf = _locate(model)
        kwargs: dict[str, Any] = {"trust_remote_code": trust_remote_code}
        if gguf:
            kwargs["gguf_file"] = gguf
        offline = gguf is not None or Path(where).exists()
        if offline:
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(where, **kwargs)
            torch_dtype = None if dtype == "auto" else getattr(torch, dtype)
            self.model = AutoModelForCausalLM.from_pretrained(where, dtype=torch_dtype, **kwargs)
        except (OSError, ValueError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ModelSpecError(f"hf/{model}: cannot load ({first})") from exc
        self.model.to(device).eval()  # type: ignore[arg-type]
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        tok = self.tokenizer
        bos = tok.bos_token or ""
        with_special = tok("x", add_special_tokens=True)["input_ids"]
        self.renderer = make_renderer(
            self.name,
            ModelTokens(
                template=getattr(tok, "chat_template", None) or None,
                bos_token=bos,
                eos_token=tok.eos_token or "",
                add_bos=bool(bos) and bool(with_special) and with_special[0] == tok.bos_token_id,
            ),
            template=template,
            system=system,
            eos_after_prefill=eos_after_prefill,
            preset=preset,
        )
        from selfcorrect.backends.presets import get_preset

        self.preset = get_preset(preset) if preset else None

    @property
    def template(self) -> str:
        return self.renderer.template

    def prompt_text(self, messages: Chat, prefill: str = "") -> str:
        return self.renderer.render(messages, prefill)

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "backend": "transformers in process",
            "device": self.device,
            "renderer": self.renderer.describe(),
            "preset": self.preset.describe() if self.preset else None,
            "prompt_sha256": "SHA-256 of the rendered prompt text (prefill included)",
            "decoding": "every GenParams field passed to generate(); typical_p=1, one beam, "
            "no n-gram blocking pinned; EOS ids from the model",
            "notes": [
                "repeat_penalty applies to the whole sequence, prompt included (transformers), "
                "where llama.cpp applies it to the last 64 generated tokens",
                "frequency/presence penalties count generated tokens (OpenAI's definition)",
                "seconds = the latency of the sub-batch a chat was generated in",
            ],
        }

    def generate(self, chats: Sequence[Chat], params: GenParams) -> list[Completion]:
        with self._calls:  # one call at a time from any thread: one model, one cache
            return self._generate(chats, params)

    def _generate(self, chats: Sequence[Chat], params: GenParams) -> list[Completion]:
        start = time.perf_counter()
        out: dict[int, Completion] = {}
        texts: dict[int, str] = {}
        for i, c in enumerate(chats):
            try:
                texts[i] = self.prompt_text(c, params.prefill)
            except TemplateError as exc:
                out[i] = Completion(
                    "", 0, 0, 0.0, "error", error=f"{self.name}: {exc}", error_kind="invalid"
                )
        # Batches of similar prompt length waste less compute on padding; results keep the
        # caller's order. (Greedy outputs do not depend on the batch: tested.)
        order = sorted(texts, key=lambda i: len(texts[i]))
        for first in range(0, len(order), self.batch_size):
            idx = order[first : first + self.batch_size]
            for i, completion in zip(
                idx, self._batch([texts[i] for i in idx], params), strict=True
            ):
                out[i] = completion
        return with_batch_seconds([out[i] for i in range(len(chats))], time.perf_counter() - start)

    def _encode(self, texts: list[str]) -> dict[str, Any]:
        """Token ids of the rendered texts, with the model's BOS where its tokenizer adds one."""
        bos = self.renderer.bos_token
        if self.renderer.add_bos:
            texts = [t if t.startswith(bos) else bos + t for t in texts]
        return dict(
            self.tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
        )

    @contextmanager
    def _neutral_generation_config(self) -> Iterator[None]:
        """While generating, the model's ``generation_config`` keeps only its special token ids.
        transformers fills every decoding setting we leave unset from it (suppressed or banned
        tokens, a minimum length, cut-offs...), so nothing of it may apply: every decoding
        setting comes from `GenParams`."""
        from transformers import GenerationConfig

        own = self.model.generation_config
        self.model.generation_config = GenerationConfig(
            bos_token_id=own.bos_token_id,
            eos_token_id=own.eos_token_id,
            pad_token_id=own.pad_token_id,
        )
        try:
            yield
        finally:
            self.model.generation_config = own

    def _batch(self, texts: list[str], params: GenParams) -> list[Completion]:
        import torch

        enc = {k: v.to(self.device) for k, v in self._encode(texts).items()}
        sample = params.temperature > 0
        kwargs: dict[str, Any] = {
            "max_new_tokens": params.max_new_tokens,
            "do_sample": sample,
            "num_beams": 1,
            "repetition_penalty": params.repeat_penalty,
            "no_repeat_ngram_size": 0,
        }
        if sample:
            torch.manual_seed(params.seed)
            kwargs.update(
                temperature=params.temperature,
                top_p=params.top_p,
                top_k=params.top_k,  # 0 = off (transformers' own default would be 50)
                min_p=params.min_p or None,
                typical_p=1.0,
            )
        else:  # greedy: sampling knobs unset, so transformers warns about none of them
            kwargs.update(temperature=None, top_p=None, top_k=None, min_p=None, typical_p=None)
        if params.frequency_penalty or params.presence_penalty:
            from transformers import LogitsProcessorList

            kwargs["logits_processor"] = LogitsProcessorList(
                [_CountPenalty(enc["input_ids"].shape[1], params)]
            )
        start = time.perf_counter()
        with torch.inference_mode(), self._neutral_generation_config():
            generated = self.model.generate(
                **enc, **kwargs, pad_token_id=self.tokenizer.pad_token_id
            )  # (b, prompt + new)
        seconds = time.perf_counter() - start
        new = generated[:, enc["input_ids"].shape[1] :]  # (b, new)
        eos = self.tokenizer.eos_token_id
        completions = []
        for text, row, mask in zip(texts, new, enc["attention_mask"], strict=True):
            ids = row.tolist()
            stopped = eos in ids
            ids = (
                ids[: ids.index(eos)]
                if stopped
                else [t for t in ids if t != self.tokenizer.pad_token_id]
            )
            out_text = str(self.tokenizer.decode(ids, skip_special_tokens=True))
            out_text, hit = _cut_at_stop(out_text, params.stop)
            completions.append(
                Completion(
                    text=out_text,
                    prompt_tokens=int(mask.sum()),
                    completion_tokens=len(ids),
                    seconds=seconds,  # this chat waited for its whole sub-batch
                    finish_reason="stop"
                    if stopped or hit or len(ids) < params.max_new_tokens
                    else "length",
                    prompt_sha256=sha256_text(text),
                )
            )
        return completions


class _CountPenalty:
    """OpenAI-style frequency/presence penalties over the generated tokens:
    ``logit[j] -= c[j] * frequency + (c[j] > 0) * presence`` (OpenAI API reference)."""

    def __init__(self, prompt_len: int, params: GenParams) -> None:
        self.prompt_len = prompt_len
        self.frequency = params.frequency_penalty
        self.presence = params.presence_penalty

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        import torch

        generated = input_ids[:, self.prompt_len :]  # (b, new so far)
        counts = torch.zeros_like(scores)  # (b, vocab)
        counts.scatter_add_(1, generated, torch.ones_like(generated, dtype=scores.dtype))
        return scores - counts * self.frequency - (counts > 0).to(scores.dtype) * self.presence


def _cut_at_stop(text: str, stops: Sequence[str]) -> tuple[str, bool]:
    cuts = [text.index(s) for s in stops if s and s in text]
    return (text[: min(cuts)], True) if cuts else (text, False)
