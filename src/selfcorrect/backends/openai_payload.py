"""What the OpenAI-compatible backend sends: every decoding field, and the prompt (rendered
locally in completions mode, or as messages for the server to render)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from selfcorrect.backends.base import Chat, GenParams, sha256_text
from selfcorrect.backends.render import Renderer


@dataclass(frozen=True)
class Payload:
    prompt: str | None  # completions mode: the text sent
    messages: list[dict[str, str]] | None  # chat mode
    digest: str


def request_body(model: str, params: GenParams, sampling_fields: str, name: str) -> dict[str, Any]:
    """Every decoding field, explicitly (server defaults such as llama_cpp.server's repeat
    penalty 1.1 never apply)."""
    body: dict[str, Any] = {
        "model": model,
        "max_tokens": params.max_new_tokens,
        "temperature": params.temperature,
        "top_p": params.top_p,
        "seed": params.seed,
        "frequency_penalty": params.frequency_penalty,
        "presence_penalty": params.presence_penalty,
    }
    if params.stop:
        body["stop"] = list(params.stop)
    extra = {
        "top_k": params.top_k,
        "min_p": params.min_p,
        "repeat_penalty": params.repeat_penalty,
        "repetition_penalty": params.repeat_penalty,
    }
    if sampling_fields == "standard":
        changed = [k for k, v in extra.items() if v != (1.0 if "penalty" in k else 0)]
        if changed:
            raise ValueError(
                f"{name}: sampling_fields=standard cannot send {', '.join(changed)}; "
                "use sampling_fields=extended with a server that reads them"
            )
        return body
    if params.temperature == 0:
        # greedy decoding ignores them, and servers disagree on how "off" is spelled (vLLM
        # before 0.9 refuses top_k 0 and wants -1; llama_cpp.server refuses -1)
        del extra["top_k"], extra["min_p"]
    body["extra_body"] = extra
    return body


def make_payload(
    c: Chat, params: GenParams, renderer: Renderer | None, system: str | None
) -> Payload:
    """With a renderer: the rendered text, less a leading BOS text when the tokenizer adds BOS
    (servers add the model's BOS themselves); its hash covers the full rendered text. Without:
    the messages (prefill as a final assistant message), hashed as canonical JSON."""
    if renderer is not None:
        text = renderer.render(c, params.prefill)
        sent = text
        bos = renderer.bos_token
        if renderer.add_bos and bos and sent.startswith(bos):
            sent = sent[len(bos) :]
        return Payload(sent, None, sha256_text(text))
    messages = [{"role": m.role, "content": m.content} for m in c]
    if system is not None and not (messages and messages[0]["role"] == "system"):
        messages.insert(0, {"role": "system", "content": system})
    if params.prefill:
        messages.append({"role": "assistant", "content": params.prefill})
    canonical = json.dumps(
        {"messages": messages, "continue_final_message": bool(params.prefill)},
        sort_keys=True,
        ensure_ascii=False,
    )
    return Payload(None, messages, sha256_text(canonical))
