"""Micro-batching for the server: requests that arrive together advance together.

One worker thread owns a `Scheduler` (the engine's step machine). Request handlers hand it a
conversation and await the result; between two steps the worker takes in every request that
arrived, so concurrent requests share backend calls round by round (batched backends stay full,
an HTTP upstream gets them concurrently). A finished conversation is passed to `on_finish`
(the audit log) before its request is answered, so a record is on disk before the reply leaves.

`window` (seconds, default 0): when a request wakes an idle worker, the worker waits this long
for others before the first step, so a burst of simultaneous requests shares its first backend
call instead of the first one going alone and the rest joining a step later.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from selfcorrect.backends.base import Backend
from selfcorrect.cac.checks import Check
from selfcorrect.cac.conversation import Conversation
from selfcorrect.cac.engine import CaCConfig, Scheduler, failure_of


@dataclass
class _Request:
    conv: Conversation
    check: Check | None
    config: CaCConfig
    future: asyncio.Future[Conversation]
    loop: asyncio.AbstractEventLoop


class Batcher:
    """Runs CaC for concurrent requests on one backend, at most `max_in_flight` at a time."""

    def __init__(
        self,
        backend: Backend,
        *,
        max_in_flight: int = 64,
        on_finish: Callable[[Conversation], None] | None = None,
        window: float = 0.0,
    ) -> None:
        if max_in_flight < 1:
            raise ValueError(f"max_in_flight must be >= 1, got {max_in_flight}")
        if not 0 <= window <= 10:
            raise ValueError(f"window must be between 0 and 10 seconds, got {window}")
        self.window = window
        self.scheduler = Scheduler(backend, contain_failures=True)  # one request's failure
        # (its upstream call raised) fails that call's requests only, not the rest in flight
        self.max_in_flight = max_in_flight
        self.on_finish = on_finish
        self._inbox: queue.Queue[_Request | None] = queue.Queue()
        self._waiting: list[_Request] = []
        self._in_flight: dict[int, _Request] = {}
        self._thread = threading.Thread(target=self._work, name="cac-batcher", daemon=True)
        self._started = False

    @property
    def in_flight(self) -> int:
        return len(self._in_flight) + len(self._waiting) + self._inbox.qsize()

    @property
    def alive(self) -> bool:
        """Whether the worker thread is running (False before `start` and after `stop`)."""
        return self._thread.is_alive()

    def start(self) -> None:
        if not self._started:
            self._started = True
            self._thread.start()

    def stop(self) -> None:
        """Finish what is in flight, then stop the worker."""
        if self._started:
            self._inbox.put(None)
            self._thread.join()

    async def run(self, conv: Conversation, check: Check | None, config: CaCConfig) -> Conversation:
        """Run CaC on `conv` together with whatever else is in flight; returns it finished.

        A failure (the backend could not be reached, a check failed) is in ``conv.error``;
        raises only when the finished conversation could not be audited (`on_finish` raised).
        """
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Conversation] = loop.create_future()
        self._inbox.put(_Request(conv, check, config, future, loop))
        return await future

    # --- the worker thread ------------------------------------------------------------------
    def _work(self) -> None:
        stopping = False
        while True:
            block = not self._in_flight and not self._waiting and not stopping
            stopping = self._take(block=block) or stopping
            if block and self.window > 0 and not stopping:
                stopping = self._gather(time.monotonic() + self.window)
            self._admit()
            if not self._in_flight:
                if stopping and self._inbox.empty():
                    return
                continue
            try:
                finished = self.scheduler.step()
            except Exception as exc:  # the scheduler itself broke: every request in flight fails
                for request in self._in_flight.values():
                    self._fail(request, exc)
                self._in_flight.clear()
                self.scheduler.jobs.clear()
                continue
            for conv in finished:
                self._finish(self._in_flight.pop(id(conv)))

    def _finish(self, request: _Request) -> None:
        """Audit, then answer with the conversation (its ``error`` says whether it failed); when
        the audit cannot be written, answer with that exception instead."""
        try:
            if self.on_finish is not None:
                self.on_finish(request.conv)
        except Exception as exc:  # e.g. the audit log cannot be written
            self._resolve(request, error=exc)
            return
        self._resolve(request)

    def _fail(self, request: _Request, exc: Exception) -> None:
        """A request that cannot go on: its conversation says why, and it is audited like any."""
        request.conv.fail(*failure_of(exc))
        self._finish(request)

    def _take(self, *, block: bool) -> bool:
        """Move arrived requests to the waiting list; True when asked to stop."""
        stop = False
        try:
            item = self._inbox.get(block=block)
            while True:
                if item is None:
                    stop = True
                else:
                    self._waiting.append(item)
                item = self._inbox.get_nowait()
        except queue.Empty:
            pass
        return stop

    def _gather(self, deadline: float) -> bool:
        """Take what arrives until `deadline` (or until there is enough for a full step);
        True when asked to stop."""
        while len(self._waiting) < self.max_in_flight:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            try:
                item = self._inbox.get(timeout=left)
            except queue.Empty:
                return False
            if item is None:
                return True
            self._waiting.append(item)
        return False

    def _admit(self) -> None:
        while self._waiting and len(self._in_flight) < self.max_in_flight:
            request = self._waiting.pop(0)
            if request.future.cancelled():  # audited too, so nothing is left behind for it
                request.conv.fail("the caller cancelled the request", "cancelled")
                self._finish(request)
                continue
            try:
                self.scheduler.add(request.conv, request.check, request.config)
            except Exception as exc:
                self._fail(request, exc)
                continue
            self._in_flight[id(request.conv)] = request

    @staticmethod
    def _resolve(request: _Request, *, error: BaseException | None = None) -> None:
        def settle() -> None:
            if request.future.done():
                return
            if error is not None:
                request.future.set_exception(error)
            else:
                request.future.set_result(request.conv)

        with contextlib.suppress(RuntimeError):  # the caller's loop closed: nobody waits
            request.loop.call_soon_threadsafe(settle)
