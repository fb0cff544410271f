"""The server's batcher (engine logic, scripted backend): a burst that wakes an idle worker shares
its first backend call when a gather window is set."""

from __future__ import annotations

import asyncio

import pytest

from selfcorrect.backends.scripted import ScriptedBackend
from selfcorrect.cac.conversation import Conversation
from selfcorrect.cac.engine import CaCConfig
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
