"""Compare two backends turn by turn: the same conversations, the first turn where they differ.

`PromptRecorder` wraps a backend and keeps the prompt hash of every chat it answered, so a
difference can be told apart as a *prompt* difference (the backends rendered the chat
differently) or a *text* difference (same prompt, different continuation: decoding or
numerics). `first_difference` reads only ``turns`` (``role``, ``content``, ``kind``,
``round``) and ``error`` of the conversations it is given.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from selfcorrect.backends.base import (
    Backend,
    Chat,
    Completion,
    GenParams,
    Message,
    describe_backend,
)


class PromptRecorder:
    """A backend that passes every call through and remembers each chat's prompt hash."""

    def __init__(self, inner: Backend) -> None:
        self.inner = inner
        self.name = inner.name
        self.hashes: dict[Chat, str | None] = {}

    def generate(self, chats: Sequence[Chat], params: GenParams) -> list[Completion]:
        out = self.inner.generate(chats, params)
        for c, completion in zip(chats, out, strict=True):
            self.hashes[c] = completion.prompt_sha256
        return out

    def describe(self) -> dict[str, Any]:
        return describe_backend(self.inner)


@dataclass(frozen=True)
class Difference:
    """Where two runs of one conversation part ways. `what` is "prompt" (same history,
    different rendered prompt), "text" (same prompt, different turn), "length" (one run has
    more turns) or "error" (one run failed)."""

    conversation: str
    turn: int  # index into the turns
    round: int
    kind: str
    what: str
    a: str
    b: str


def first_difference(
    conv_a: Any,
    conv_b: Any,
    hashes_a: dict[Chat, str | None] | None = None,
    hashes_b: dict[Chat, str | None] | None = None,
) -> Difference | None:
    """The first turn where `conv_a` and `conv_b` differ, or None if they are identical."""
    cid = str(getattr(conv_a, "id", "?"))
    history: list[Message] = []
    for i, (ta, tb) in enumerate(zip(conv_a.turns, conv_b.turns)):
        if ta.role == "assistant" and hashes_a is not None and hashes_b is not None:
            key = tuple(history)
            ha, hb = hashes_a.get(key), hashes_b.get(key)
            if ha is not None and hb is not None and ha != hb:
                return Difference(cid, i, ta.round, ta.kind, "prompt", ha, hb)
        if (ta.role, ta.kind, ta.content) != (tb.role, tb.kind, tb.content):
            return Difference(cid, i, ta.round, ta.kind, "text", ta.content, tb.content)
        history.append(Message(ta.role, ta.content))
    ea, eb = getattr(conv_a, "error", None), getattr(conv_b, "error", None)
    if ea != eb:
        n = min(len(conv_a.turns), len(conv_b.turns))
        return Difference(cid, n, -1, "error", "error", str(ea), str(eb))
    if len(conv_a.turns) != len(conv_b.turns):
        n = min(len(conv_a.turns), len(conv_b.turns))
        longer = conv_a if len(conv_a.turns) > n else conv_b
        t = longer.turns[n]
        a = t.content if longer is conv_a else ""
        b = t.content if longer is conv_b else ""
        return Difference(cid, n, t.round, t.kind, "length", a, b)
    return None
