"""The server's audit trail: one record per served request in ``<out>/records.jsonl``.

Each record holds the request's messages and settings, every turn (answers, checks, verdicts,
tokens, seconds) and the status. Records are appended and flushed by the batcher's worker
before the reply is sent, so what a client received is on disk; failed requests go to
``failures.jsonl``. `selfcorrect report <out>` renders the directory.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from selfcorrect.cac.conversation import Conversation
from selfcorrect.runs import RunDir
from selfcorrect.serve.schema import usage


class AuditLog:
    def __init__(self, run: RunDir | None) -> None:
        self.run = run
        self._meta: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()

    def expect(self, conv: Conversation, **meta: Any) -> None:
        """Remember a request's settings until its conversation finishes."""
        with self._lock:
            self._meta[conv.id] = {"received": time.time(), **meta}

    def finished(self, conv: Conversation) -> None:
        with self._lock:
            meta = self._meta.pop(conv.id, {})
        if self.run is None:
            return
        kept = conv.final_answer()
        record = {
            "id": conv.id,
            **meta,
            "seconds": round(time.time() - meta.get("received", time.time()), 3),
            "status": "error" if conv.error else "ok",
            "error": conv.error,
            "kept_round": kept.round if kept and not conv.error else None,
            "final_answer": kept.content if kept and not conv.error else None,
            "usage": usage(conv),
            "turns": [t.to_dict() for t in conv.turns],
        }
        self.run.append(record, failed=conv.error is not None)
