"""In-process transformers backend: batched generation with left padding.

``hf/<hub id or local path>`` loads a checkpoint; ``hf/smollm2`` and ``hf/<file.gguf>`` load a GGUF
through transformers (dequantised), so this backend is tested on the embedded model. Chats are
rendered with the tokenizer's chat template or a named built-in one (``vicuna_v1.1``,
``llama-2-chat``, ``chatml``), then the assistant prefill is appended. ``trust_remote_code`` is
off unless asked for.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from selfcorrect.backends.base import Chat, Completion, GenParams, ModelSpecError
from selfcorrect.backends.templates import CHATML, render_chat, resolve_template

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
        source = template or getattr(self.tokenizer, "chat_template", None) or CHATML
        self.template = resolve_template(source)

    def prompt_text(self, messages: Chat, prefill: str = "") -> str:
        return render_chat(
            self.template,
            messages,
            bos_token=self.tokenizer.bos_token or "",
            eos_token=self.tokenizer.eos_token or "",
            prefill=prefill,
        )

    def generate(self, chats: Sequence[Chat], params: GenParams) -> list[Completion]:
        # Batches of similar prompt length waste less compute on padding; results keep the
        # caller's order. (Greedy outputs do not depend on the batch: tested.)
        order = sorted(
            range(len(chats)), key=lambda i: len(self.prompt_text(chats[i], params.prefill))
        )
        out: dict[int, Completion] = {}
        for start in range(0, len(order), self.batch_size):
            idx = order[start : start + self.batch_size]
            for i, completion in zip(
                idx, self._batch([chats[i] for i in idx], params), strict=True
            ):
                out[i] = completion
        return [out[i] for i in range(len(chats))]

    def _batch(self, chats: Sequence[Chat], params: GenParams) -> list[Completion]:
        import torch

        texts = [self.prompt_text(c, params.prefill) for c in chats]
        enc = self.tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
        enc = {k: v.to(self.device) for k, v in enc.items()}
        sample = params.temperature > 0
        kwargs: dict[str, Any] = {"max_new_tokens": params.max_new_tokens, "do_sample": sample}
        if sample:
            torch.manual_seed(params.seed)
            kwargs.update(temperature=params.temperature, top_p=params.top_p)
        else:
            kwargs.update(temperature=None, top_p=None, top_k=None)
        start = time.perf_counter()
        with torch.inference_mode():
            generated = self.model.generate(
                **enc, **kwargs, pad_token_id=self.tokenizer.pad_token_id
            )  # (b, prompt + new)
        seconds = time.perf_counter() - start
        new = generated[:, enc["input_ids"].shape[1] :]  # (b, new)
        eos = self.tokenizer.eos_token_id
        completions = []
        for row, mask in zip(new, enc["attention_mask"], strict=True):
            ids = row.tolist()
            stopped = eos in ids
            ids = (
                ids[: ids.index(eos)]
                if stopped
                else [t for t in ids if t != self.tokenizer.pad_token_id]
            )
            text = str(self.tokenizer.decode(ids, skip_special_tokens=True))
            text, hit = _cut_at_stop(text, params.stop)
            completions.append(
                Completion(
                    text=text,
                    prompt_tokens=int(mask.sum()),
                    completion_tokens=len(ids),
                    seconds=seconds / len(chats),  # the batch's time, shared equally
                    finish_reason="stop"
                    if stopped or hit or len(ids) < params.max_new_tokens
                    else "length",
                )
            )
        return completions


def _cut_at_stop(text: str, stops: Sequence[str]) -> tuple[str, bool]:
    cuts = [text.index(s) for s in stops if s and s in text]
    return (text[: min(cuts)], True) if cuts else (text, False)
