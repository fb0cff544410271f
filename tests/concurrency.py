"""A check shared by the in-process backends' tests: calls from several threads run one at a
time (the engine may call a checker model from two of a step's parallel calls)."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

from selfcorrect.backends.base import GenParams, chat


def assert_one_call_at_a_time(backend, monkeypatch) -> None:
    """Two threads call `backend.generate` at once: never are both inside its `_generate`
    (each waits up to 1 s there for the other to come in, and refuses to run the model twice
    at once), and each gets the answer it gets alone."""
    lock, both_in = threading.Lock(), threading.Event()
    active, most = [0], [0]
    real = backend._generate

    def watched(chats, params):
        with lock:
            active[0] += 1
            most[0] = max(most[0], active[0])
            if active[0] == 2:
                both_in.set()
        both_in.wait(timeout=1)  # room for a second call to come in, if it can
        try:
            if both_in.is_set():  # never run the model twice at once (it could crash)
                raise AssertionError("two calls were inside the model at once")
            return real(chats, params)
        finally:
            with lock:
                active[0] -= 1

    monkeypatch.setattr(backend, "_generate", watched)
    qs = [chat(("user", "Say hi.")), chat(("user", "Name a colour."))]
    params = GenParams(max_new_tokens=6)
    with ThreadPoolExecutor(2) as pool:
        together = list(pool.map(lambda q: backend.generate([q], params)[0].text, qs))
    monkeypatch.undo()
    assert most == [1]
    assert together == [backend.generate([q], params)[0].text for q in qs]
