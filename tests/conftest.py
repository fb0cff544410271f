"""Shared fixtures: one real embedded model per test session."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def smollm2():
    """The embedded SmolLM2-135M GGUF through in-process llama.cpp (a real model)."""
    from selfcorrect.backends.base import get_backend

    return get_backend("llamacpp/smollm2")
