"""A deterministic scripted backend, for engine-logic tests only.

It never models anything: each reply comes from a caller-supplied function of the chat (or from
a fixed list, in turn). Every call is logged so tests can assert the exact conversations the
engine built.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence

from selfcorrect.backends.base import Chat, Completion, GenParams, sha256_text

Responder = Callable[[Chat, GenParams], str]


class ScriptedBackend:
    def __init__(self, responder: Responder | None = None, replies: Sequence[str] = ()) -> None:
        self.name = "scripted"
        self._responder = responder
        self._replies = list(replies)
        self.calls: list[tuple[Chat, GenParams]] = []

    def generate(self, chats: Sequence[Chat], params: GenParams) -> list[Completion]:
        out = []
        for c in chats:
            self.calls.append((c, params))
            if self._responder is not None:
                text = self._responder(c, params)
            elif self._replies:
                text = self._replies.pop(0)
            else:
                text = "ok"
            n_prompt = sum(len(m.content.split()) for m in c)
            out.append(
                Completion(
                    text=text,
                    prompt_tokens=n_prompt,
                    completion_tokens=len(text.split()),
                    seconds=0.0,
                    finish_reason="stop",
                    prompt_sha256=_digest(c, params.prefill),
                )
            )
        return out


def _digest(c: Chat, prefill: str) -> str:
    """Scripted chats are never rendered: the hash covers the messages and the prefill."""
    messages = [[m.role, m.content] for m in c]
    return sha256_text(json.dumps({"messages": messages, "prefill": prefill}, ensure_ascii=False))
