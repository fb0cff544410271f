"""The backend seam: one protocol every LLM backend implements, and `get_backend()`.

A backend takes a *batch* of chats and one set of generation parameters and returns one
`Completion` per chat, in order. Batching, caching and concurrency are the backend's business.
Model specs look like ``llamacpp/smollm2``, ``hf/<hub id or path>``, ``openai/<model>``, or
``scripted`` (engine tests only).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol, runtime_checkable

Role = Literal["system", "user", "assistant"]
FinishReason = Literal["stop", "length", "error"]


class BackendError(RuntimeError):
    """A backend could not produce a completion (unreachable server, failed request...)."""


class ModelSpecError(ValueError):
    """A model spec names no known backend or a model that cannot be found."""


@dataclass(frozen=True)
class Message:
    role: Role
    content: str


Chat = tuple[Message, ...]


def chat(*pairs: tuple[Role, str]) -> Chat:
    """Build a chat from ``(role, content)`` pairs."""
    return tuple(Message(role, content) for role, content in pairs)


@dataclass(frozen=True)
class GenParams:
    """Generation parameters for one call.

    `prefill` is the start of the assistant's answer (the paper's BBQ prompt pre-fills
    "The answer is"); the model continues it and `Completion.text` holds only the continuation.
    `temperature == 0` means greedy decoding.
    """

    max_new_tokens: int = 256
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int = 0
    stop: tuple[str, ...] = ()
    prefill: str = ""
    # A GBNF grammar the output must match (constrained decoding). Applied by the llama.cpp
    # backend; other backends ignore it (callers still parse strictly).
    grammar: str | None = None

    def __post_init__(self) -> None:
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")
        if self.temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")


@dataclass(frozen=True)
class Completion:
    """One generated continuation with its cost."""

    text: str
    prompt_tokens: int
    completion_tokens: int
    seconds: float
    finish_reason: FinishReason
    cached_tokens: int = 0  # prompt tokens whose KV state was reused, not recomputed
    error: str | None = None
    extra: dict[str, object] = field(default_factory=dict)


@runtime_checkable
class Backend(Protocol):
    """What every backend provides."""

    name: str

    def generate(self, chats: Sequence[Chat], params: GenParams) -> list[Completion]:
        """One completion per chat, in the order of `chats`."""
        ...


def get_backend(spec: str, **options: object) -> Backend:
    """Resolve a model spec to a backend instance; heavy libraries load only here.

    Options set to None are left out, so callers can pass optional flags straight through.
    Raises `ModelSpecError` for an unknown spec, or for ``base_url`` given to a backend that
    serves no URL.
    """
    options = {k: v for k, v in options.items() if v is not None}
    prefix, _, rest = spec.partition("/")
    if "base_url" in options and prefix != "openai":
        raise ModelSpecError(f"--base-url only applies to openai/<model> specs, not {spec!r}")
    if spec == "scripted":
        prefix, rest = "scripted", ""
    elif prefix not in BACKENDS or not rest or prefix == "scripted":
        raise ModelSpecError(
            f"unknown model spec {spec!r}: use llamacpp/smollm2, llamacpp/<file.gguf>, "
            "hf/<hub id or local path>, or openai/<model> with --base-url"
        )
    import importlib

    module, name = BACKENDS[prefix]
    cls = getattr(importlib.import_module(module), name)
    try:
        return cls(rest, **options) if rest else cls(**options)  # type: ignore[no-any-return]
    except TypeError as exc:  # an option the backend does not take
        raise ModelSpecError(f"{spec}: {exc}".replace(".__init__() ", " ")) from exc


# prefix -> (module, class); modules are imported only when their backend is used
BACKENDS = {
    "llamacpp": ("selfcorrect.backends.llamacpp", "LlamaCppBackend"),
    "hf": ("selfcorrect.backends.hf", "HFBackend"),
    "openai": ("selfcorrect.backends.openai_compat", "OpenAIBackend"),
    "scripted": ("selfcorrect.backends.scripted", "ScriptedBackend"),
}
