"""The server's batcher (engine logic, scripted backend): a burst that wakes an idle worker shares
its first backend call when a gather window is set."""

from __future__ import annotations

import asyncio
import time

import pytest

from selfcorrect.backends.base import BackendError, GenParams
from selfcorrect.backends.scripted import ScriptedBackend
from selfcorrect.cac.conversation import Conversation
from selfcorrect.cac.engine import CaCConfig
from selfcorrect.serve.audit import AuditLog
from selfcorrect.serve.batcher import Batcher


class Recording(ScriptedBackend):
    def __init__(self) -> None:
        super().__init__(lambda chat, params: " an answer")
        self.sizes: list[int] = []

    def generate(self, chats, params):
        self.sizes.append(len(chats))
        return super().generate(chats, params)


async def burst(batcher: Batcher, n: int, gap: float) -> list[Conversation]:
    tasks = []
    for i in range(n):
        conv = Conversation(id=str(i), question=f"question {i}")
        tasks.append(asyncio.create_task(batcher.run(conv, None, CaCConfig(rounds=0))))
        await asyncio.sleep(gap)
    return await asyncio.gather(*tasks)


def test_a_burst_shares_the_first_call_within_the_window():
    backend = Recording()
    batcher = Batcher(backend, window=5.0, max_in_flight=4)
    batcher.start()
    try:
        done = asyncio.run(burst(batcher, 4, gap=0.05))
    finally:
        batcher.stop()
    assert backend.sizes == [4]  # 4 requests 50 ms apart, one backend call
    assert [c.final_answer().content for c in done] == [" an answer"] * 4


def test_the_window_is_bounded():
    with pytest.raises(ValueError, match="window"):
        Batcher(Recording(), window=-1)


# ---- failures stay with their own requests -------------------------------------------------


class Failing(ScriptedBackend):
    """Raises for calls with `max_new_tokens` in `fail` (a group of its own), answers the rest."""

    def __init__(self, fail: dict[int, Exception]) -> None:
        super().__init__(lambda chat, params: " an answer")
        self.fail = fail

    def generate(self, chats, params):
        if params.max_new_tokens in self.fail:
            raise self.fail[params.max_new_tokens]
        return super().generate(chats, params)


def run_together(batcher: Batcher, limits: list[int]) -> list[Conversation]:
    async def go():
        tasks = [
            asyncio.create_task(
                batcher.run(
                    Conversation(id=f"r{i}", question="q"),
                    None,
                    CaCConfig(rounds=0, answer=GenParams(max_new_tokens=n)),
                )
            )
            for i, n in enumerate(limits)
        ]
        return await asyncio.gather(*tasks)

    batcher.start()
    try:
        return asyncio.run(go())
    finally:
        batcher.stop()


def test_a_call_that_raises_fails_only_its_own_requests_and_they_are_audited():
    backend = Failing(
        {7: BackendError("scripted: cannot reach the server at http://x"), 9: KeyError("bug")}
    )
    audit = AuditLog(None)
    batcher = Batcher(backend, on_finish=audit.finished, window=0.5)
    convs = [Conversation(id=f"r{i}", question="q") for i in range(3)]
    for conv in convs:
        audit.expect(conv, model="m")
    done = run_together(batcher, [16, 7, 9])
    assert done[0].error is None and done[0].final_answer().content == " an answer"
    assert done[1].error == "scripted: cannot reach the server at http://x"
    assert done[2].error == "internal error: KeyError: 'bug'"
    assert audit._meta == {}  # every request was audited, failed ones too: nothing left behind


def test_a_closed_caller_loop_does_not_kill_the_worker():
    slow = ScriptedBackend(lambda chat, params: time.sleep(0.3) or " late")
    batcher = Batcher(slow)
    batcher.start()
    try:

        async def give_up():
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(
                    batcher.run(Conversation(id="a", question="q"), None, CaCConfig(rounds=0)), 0.05
                )

        asyncio.run(give_up())  # this loop is closed before the worker answers
        time.sleep(0.5)

        async def ask():
            conv = Conversation(id="b", question="q")
            return await asyncio.wait_for(batcher.run(conv, None, CaCConfig(rounds=0)), 10)

        assert asyncio.run(ask()).final_answer().content == " late"
        assert batcher.alive
    finally:
        batcher.stop()
    assert not batcher.alive
