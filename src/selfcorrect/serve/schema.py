"""OpenAI chat-completion requests in, CaC conversations out, and the responses back.

`parse_request` validates a decoded JSON body field by field and raises `RequestError` (HTTP
400, with the offending field named) for anything it cannot honour; `completion_body` and
`stream_chunks` write OpenAI's response and chunk formats, plus a ``selfcorrect`` object with
every round (answer, check, verdict) and which answer the policy kept.
"""

from __future__ import annotations

import json
import math
import secrets
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from selfcorrect.backends.base import GenParams, Message
from selfcorrect.cac.checks import YesMeans
from selfcorrect.cac.conversation import Conversation, FinalPolicy
from selfcorrect.specs import MAX_ROUNDS, SpecError, parse

ROLES = ("system", "user", "assistant")
# refused (400) rather than ignored: an answer without what these ask for is not their answer
UNSUPPORTED = (
    "tools",
    "functions",
    "tool_choice",
    "function_call",
    "logprobs",
    "top_logprobs",
    "audio",
    "response_format",
    "logit_bias",
)
MAX_STOP = 4


class RequestError(ValueError):
    """A request the server cannot honour; `status` is the HTTP status to answer with."""

    def __init__(self, message: str, *, status: int = 400, param: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.param = param


@dataclass(frozen=True)
class CaCOverrides:
    """The per-request ``selfcorrect`` field (what the openai client sends in `extra_body`)."""

    rounds: int | None = None
    check: str | None = None
    check_prompt: str | None = None
    yes_means: YesMeans | None = None
    final: FinalPolicy | None = None


@dataclass(frozen=True)
class ChatRequest:
    """A validated request: the chat, decoding, streaming and CaC overrides."""

    model: str | None
    messages: tuple[Message, ...]
    params: GenParams
    stream: bool
    include_usage: bool
    user: str | None
    overrides: CaCOverrides


def _fail(field: str, message: str) -> RequestError:
    return RequestError(f"'{field}': {message}", param=field)


def _int(
    body: Mapping[str, Any], field: str, lo: int, hi: int, *, path: str | None = None
) -> int | None:
    """`body[field]` as a whole number in [lo, hi] (None when absent); errors name `path`
    (default: `field`)."""
    value, name = body.get(field), path or field
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise _fail(name, f"must be a whole number, got {type(value).__name__}")
    if not lo <= value <= hi:
        raise _fail(name, f"must be between {lo} and {hi}, got {value}")
    return value


def _number(body: Mapping[str, Any], field: str, lo: float, hi: float) -> float | None:
    value = body.get(field)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise _fail(field, f"must be a number, got {value!r}")
    if not lo <= value <= hi:
        raise _fail(field, f"must be between {lo:g} and {hi:g}, got {value}")
    return float(value)


def _text(value: Any, field: str) -> str:
    """A message's content: a string, or a list of text parts."""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        parts = []
        for i, part in enumerate(value):
            if not isinstance(part, dict) or part.get("type") != "text":
                raise _fail(f"{field}[{i}]", "only text content parts are supported")
            if not isinstance(part.get("text"), str):
                raise _fail(f"{field}[{i}].text", "must be a string")
            parts.append(part["text"])
        return "".join(parts)
    raise _fail(field, f"must be a string or a list of text parts, got {type(value).__name__}")


def _messages(body: Mapping[str, Any]) -> tuple[Message, ...]:
    raw = body.get("messages")
    if raw is None:
        raise _fail("messages", "is required")
    if not isinstance(raw, list) or not raw:
        raise _fail("messages", "must be a non-empty list")
    out = []
    for i, m in enumerate(raw):
        if not isinstance(m, dict):
            raise _fail(f"messages[{i}]", "must be an object")
        role = m.get("role")
        if role == "developer":  # OpenAI's newer name for the system role
            role = "system"
        if role not in ROLES:
            raise _fail(
                f"messages[{i}].role", f"unknown role {role!r}; use system, user or assistant"
            )
        out.append(Message(role, _text(m.get("content"), f"messages[{i}].content")))
    if out[-1].role != "user":
        raise _fail("messages", "the last message must be the user's")
    if any(m.role == "system" for m in out[1:]):
        raise _fail("messages", "a system message may only come first")
    return tuple(out)


def _stop(body: Mapping[str, Any]) -> tuple[str, ...]:
    stop = body.get("stop")
    if stop is None:
        return ()
    if isinstance(stop, str):
        stop = [stop]
    if not isinstance(stop, list) or not all(isinstance(s, str) and s for s in stop):
        raise _fail("stop", "must be a string or a list of non-empty strings")
    if len(stop) > MAX_STOP:
        raise _fail("stop", f"at most {MAX_STOP} stop sequences")
    return tuple(stop)


def _overrides(body: Mapping[str, Any]) -> CaCOverrides:
    raw = body.get("selfcorrect")
    if raw is None:
        return CaCOverrides()
    if not isinstance(raw, dict):
        raise _fail("selfcorrect", "must be an object")
    unknown = sorted(set(raw) - {"rounds", "check", "check_prompt", "yes_means", "final"})
    if unknown:
        raise _fail("selfcorrect", f"unknown field(s) {', '.join(unknown)}")
    rounds = _int(raw, "rounds", 0, MAX_ROUNDS, path="selfcorrect.rounds")
    check = raw.get("check")
    if check is not None:
        if not isinstance(check, str):
            raise _fail("selfcorrect.check", "must be a check spec string")
        try:
            parse("check", check)
        except SpecError as exc:
            raise _fail("selfcorrect.check", str(exc)) from None
    prompt = raw.get("check_prompt")
    if prompt is not None and (not isinstance(prompt, str) or not prompt.strip()):
        raise _fail("selfcorrect.check_prompt", "must be a non-empty string")
    yes_means = raw.get("yes_means")
    if yes_means is not None and yes_means not in ("fail", "pass"):
        raise _fail("selfcorrect.yes_means", f"must be fail or pass, got {yes_means!r}")
    final = raw.get("final")
    if final is not None and final not in ("last", "first_accepted"):
        raise _fail("selfcorrect.final", f"must be last or first_accepted, got {final!r}")
    return CaCOverrides(
        rounds=rounds, check=check, check_prompt=prompt, yes_means=yes_means, final=final
    )


def parse_request(body: Any, *, default_max_tokens: int) -> ChatRequest:
    """Validate a decoded chat-completion body; raises `RequestError` naming the field."""
    if not isinstance(body, dict):
        raise RequestError(f"the body must be a JSON object, got {type(body).__name__}")
    for field in UNSUPPORTED:
        if body.get(field) not in (None, False, []):
            raise _fail(field, "is not supported by the CaC server")
    model = body.get("model")
    if model is not None and not isinstance(model, str):
        raise _fail("model", "must be a string")
    n = _int(body, "n", 1, 1_000_000)
    if n is not None and n != 1:
        raise _fail("n", "only n = 1 is supported (one conversation per request)")
    max_tokens = _int(body, "max_completion_tokens", 1, 1 << 20)
    if max_tokens is None:
        max_tokens = _int(body, "max_tokens", 1, 1 << 20)
    temperature = _number(body, "temperature", 0.0, 2.0)
    top_p = _number(body, "top_p", 0.0, 1.0)
    if top_p == 0.0:
        raise _fail("top_p", "must be above 0")
    seed = _int(body, "seed", -(1 << 63), (1 << 63) - 1)
    if seed is None:  # as OpenAI: no seed, no repeats; the seed drawn is in the response
        seed = secrets.randbits(31)
    penalties = {f: _number(body, f, -2.0, 2.0) for f in ("presence_penalty", "frequency_penalty")}
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise _fail("stream", "must be true or false")
    options = body.get("stream_options") or {}
    if not isinstance(options, dict):
        raise _fail("stream_options", "must be an object")
    include_usage = options.get("include_usage", False)
    if not isinstance(include_usage, bool):
        raise _fail("stream_options.include_usage", "must be true or false")
    user = body.get("user")
    if user is not None and not isinstance(user, str):
        raise _fail("user", "must be a string")
    params = GenParams(
        max_new_tokens=max_tokens or default_max_tokens,
        temperature=0.0 if temperature is None else temperature,
        top_p=1.0 if top_p is None else top_p,
        seed=seed,
        stop=_stop(body),
        presence_penalty=penalties["presence_penalty"] or 0.0,
        frequency_penalty=penalties["frequency_penalty"] or 0.0,
    )
    return ChatRequest(
        model=model,
        messages=_messages(body),
        params=params,
        stream=stream,
        include_usage=include_usage,
        user=user,
        overrides=_overrides(body),
    )


# --- responses ------------------------------------------------------------------------------


def usage(conv: Conversation) -> dict[str, Any]:
    """Tokens summed over every model call of every round (answers and checks)."""
    turns = [t for t in conv.turns if t.role == "assistant" and t.source != "context"]
    prompt = sum(t.prompt_tokens for t in turns)
    completion = sum(t.completion_tokens for t in turns)
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": sum(t.cached_tokens for t in turns)},
    }


def cac_summary(conv: Conversation, *, check: str, final_policy: str, seed: int) -> dict[str, Any]:
    """The ``selfcorrect`` response object: every round and which answer was kept, and the
    seed the answers were generated with (a request without one gets a random seed)."""
    answers = conv.answers()
    checks = {t.round: t for t in conv.checks()}
    kept = conv.final_answer()
    calls = conv.generated()
    rounds = []
    for answer in answers:
        checked = checks.get(answer.round + 1)
        rounds.append(
            {
                "round": answer.round,
                "answer": answer.content,
                "check": checked.content if checked else None,
                "verdict": checked.verdict if checked else None,
            }
        )
    return {
        "check": check,
        "final": final_policy,
        "kept_round": kept.round if kept else None,
        "seed": seed,
        "rounds": rounds,
        # wall time of the backend calls this request's turns came from (a call shared by the
        # requests batched with it counts for each of them); latency minus this is serving time
        "model_seconds": round(sum(t.batch_seconds for t in calls), 4),
        "turns": [
            {
                "kind": t.kind,
                "round": t.round,
                "content": t.content,
                "verdict": t.verdict,
                "source": t.source,
                "prompt_tokens": t.prompt_tokens,
                "completion_tokens": t.completion_tokens,
                "seconds": round(t.batch_seconds, 4),
            }
            for t in calls
        ],
    }


def completion_body(
    conv: Conversation, *, request_id: str, model: str, summary: dict[str, Any]
) -> dict[str, Any]:
    final = conv.final_answer()
    assert final is not None
    return {
        "id": request_id,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": final.content},
                "finish_reason": final.finish_reason or "stop",
            }
        ],
        "usage": usage(conv),
        "selfcorrect": summary,
    }


def _chunk(
    request_id: str, model: str, created: int, delta: dict[str, Any], finish: str | None
) -> dict[str, Any]:
    return {
        "id": request_id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }


def sse(obj: Any) -> bytes:
    return f"data: {json.dumps(obj, ensure_ascii=False)}\n\n".encode()


def stream_chunks(body: dict[str, Any], *, include_usage: bool, piece: int = 64) -> Iterator[bytes]:
    """The finished completion as server-sent events in OpenAI's chunk format: the content in
    pieces, a last chunk with the finish reason (and the ``selfcorrect`` object), the usage
    chunk when asked for, then ``data: [DONE]``."""
    rid, model, created = body["id"], body["model"], body["created"]
    choice = body["choices"][0]
    content = choice["message"]["content"]
    for start in range(0, len(content), piece):
        yield sse(_chunk(rid, model, created, {"content": content[start : start + piece]}, None))
    last = _chunk(rid, model, created, {}, choice["finish_reason"])
    last["selfcorrect"] = body["selfcorrect"]
    yield sse(last)
    if include_usage:
        yield sse({**_chunk(rid, model, created, {}, None), "choices": [], "usage": body["usage"]})
    yield b"data: [DONE]\n\n"


def error_body(message: str, *, status: int, kind: str, param: str | None = None) -> dict[str, Any]:
    """OpenAI's error format."""
    return {"error": {"message": message, "type": kind, "param": param, "code": status}}
