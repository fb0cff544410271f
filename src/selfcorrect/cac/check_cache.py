"""Shared check objects: conversations whose checks have equal settings get the same object.

The scheduler batches check calls by check object, so a server or provider that builds a check
per request must hand equal settings the same one. Every seed or prompt makes a new key, so the
cache is bounded: past `size`, the least recently used is dropped (a conversation in flight keeps
its own reference). Safe to share between threads.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from selfcorrect.cac.checks import Check

MAX_CACHED_CHECKS = 256


class CheckCache:
    """At most `size` checks, one per key, built on first use.

    Example::

        checks = CheckCache()
        check = checks.get(("verdict", params), lambda: make_check("verdict"))
    """

    def __init__(self, size: int = MAX_CACHED_CHECKS) -> None:
        if size < 1:
            raise ValueError(f"size must be >= 1, got {size}")
        self.size = size
        self._items: OrderedDict[Hashable, Check | None] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable, build: Callable[[], Check | None]) -> Check | None:
        """The check for `key`, built by `build()` the first time (an error there stores
        nothing)."""
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
            check = build()
            self._items[key] = check
            while len(self._items) > self.size:
                self._items.popitem(last=False)
            return check

    def __len__(self) -> int:
        return len(self._items)
