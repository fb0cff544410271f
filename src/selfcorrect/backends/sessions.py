"""Session keys: every request of one conversation carries the same key.

CaC sends each conversation several times (answer, check, re-answer), each request the previous
one plus new turns. A prefix-aware router in front of several replicas (vLLM's production
stack, SGLang's router, a gateway with sticky sessions) keeps a conversation's rounds on one
replica, where its prefix is cached, if every request names the same session. The backend is
stateless about conversations, so the key is found from the chat itself: a chat that extends a
chat seen before gets that chat's key; a new chat gets a key of its own (a hash of its text).
"""

from __future__ import annotations

import hashlib
import json
from collections import OrderedDict

from selfcorrect.backends.base import Chat


class SessionKeys:
    """Chat -> session key, remembering up to `capacity` conversations (least recent first out)."""

    def __init__(self, capacity: int = 100_000) -> None:
        self.capacity = capacity
        self._known: OrderedDict[str, str] = OrderedDict()

    def key(self, chat: Chat) -> str:
        digest = hashlib.sha256()
        prefixes = []
        for m in chat:
            digest.update(json.dumps([m.role, m.content], ensure_ascii=False).encode() + b"\n")
            prefixes.append(digest.hexdigest())
        for prefix in reversed(prefixes):
            if prefix in self._known:
                self._known.move_to_end(prefix)
                return self._known[prefix]
        key = "sc-" + prefixes[-1][:24]
        self._known[prefixes[-1]] = key
        while len(self._known) > self.capacity:
            self._known.popitem(last=False)
        return key
