"""The backend seam: one protocol every LLM backend implements, and `get_backend()`.

A backend takes a *batch* of chats and one set of generation parameters and returns one
`Completion` per chat, in order. Batching, caching and concurrency are the backend's business.
Model specs look like ``llamacpp/smollm2``, ``hf/<hub id or path>``, ``openai/<model>``, or
``scripted`` (engine tests only).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Literal, Protocol, runtime_checkable

Role = Literal["system", "user", "assistant"]
FinishReason = Literal["stop", "length", "error"]
FailureKind = Literal["invalid", "unreachable", "timeout", "upstream", "internal", "cancelled"]
"""Whose failure it is: "invalid", the request cannot be served (too long for the model's
context, a chat its template cannot render, refused by the upstream as invalid);
"unreachable", the model's server cannot be reached; "timeout", it did not answer in time;
"upstream", any other failure of the model or its server; "internal", a bug of ours;
"cancelled", the caller gave up."""


class BackendError(RuntimeError):
    """A backend could not produce a completion (unreachable server, failed request...);
    `kind` says whose failure it is (a `FailureKind`). A check may raise it too: the server
    answers a failed request with the status its kind calls for.

    Example::

        raise BackendError("my-judge: cannot reach http://judge:8000", kind="unreachable")
    """

    def __init__(self, message: str, *, kind: FailureKind = "upstream") -> None:
        super().__init__(message)
        self.kind: FailureKind = kind


class ModelSpecError(ValueError):
    """A model spec names no known backend or a model that cannot be found."""


@dataclass(frozen=True)
class Message:
    """One chat message: `role` is "system", "user" or "assistant".

    Example::

        Message("user", "Is 91 a prime number?")
    """

    role: Role
    content: str


Chat = tuple[Message, ...]


def chat(*pairs: tuple[Role, str]) -> Chat:
    """Build a chat from ``(role, content)`` pairs."""
    return tuple(Message(role, content) for role, content in pairs)


@dataclass(frozen=True)
class GenParams:
    """Generation parameters for one call; every backend sends every field explicitly.

    `prefill` is the start of the assistant's answer (the paper's BBQ prompt pre-fills
    "The answer is"); the model continues it and `Completion.text` holds only the continuation.
    `temperature == 0` means greedy decoding (the sampling fields then do nothing); `seed`
    seeds sampling. The defaults are neutral: no top-k (0), no min-p (0), no repetition
    penalty (1.0), no frequency or presence penalty (0), so no library or server default
    (llama.cpp's min-p 0.05, llama_cpp.server's repeat penalty 1.1, transformers' top-k 50)
    leaks in. A backend that cannot apply a field says so in its ``describe()``.

    Example::

        GenParams(max_new_tokens=64, temperature=0.6, top_p=0.9, seed=1, prefill="The answer is")
    """

    max_new_tokens: int = 256
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int = 0
    stop: tuple[str, ...] = ()
    prefill: str = ""
    top_k: int = 0  # 0 = off
    min_p: float = 0.0  # 0 = off
    repeat_penalty: float = 1.0  # multiplicative (llama.cpp, transformers); 1 = off
    frequency_penalty: float = 0.0  # additive per occurrence (OpenAI API); 0 = off
    presence_penalty: float = 0.0  # additive once per seen token (OpenAI API); 0 = off
    # A GBNF grammar the output must match (constrained decoding). Applied by the llama.cpp
    # backend; other backends ignore it (callers still parse strictly).
    grammar: str | None = None

    def batch_key(self) -> GenParams:
        """These parameters as far as they change the output: greedy decoding ignores the
        seed, so it is zeroed at temperature 0. Calls with equal keys can share one batch (a
        server gives every request without a seed a random one; greedy requests still batch)."""
        return replace(self, seed=0) if self.temperature == 0 else self

    def __post_init__(self) -> None:
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")
        if self.temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.top_k < 0:
            raise ValueError(f"top_k must be >= 0 (0 = off), got {self.top_k}")
        if not 0 <= self.min_p <= 1:
            raise ValueError(f"min_p must be in [0, 1], got {self.min_p}")
        if self.repeat_penalty <= 0:
            raise ValueError(f"repeat_penalty must be > 0 (1 = off), got {self.repeat_penalty}")
        for name in ("frequency_penalty", "presence_penalty"):
            if not -2 <= getattr(self, name) <= 2:
                raise ValueError(f"{name} must be in [-2, 2], got {getattr(self, name)}")

    @property
    def greedy(self) -> bool:
        return self.temperature == 0


@dataclass(frozen=True)
class Completion:
    """One generated continuation with its cost.

    `text` is the continuation only (without the prefill); `finish_reason` is "stop",
    "length" or "error" (then `error` says why and `text` is not an answer).

    Timing: `seconds` is this request's own latency (from the start of the work that produced
    it to its end). Requests of one call may overlap (concurrent HTTP requests, one batched
    forward pass), so summing `seconds` gives *summed request seconds*, which can exceed wall
    time. `batch_seconds` is the wall time of the whole `generate()` call this completion came
    from (the same for every completion of the call): wall time per turn batch.

    `prompt_sha256` is the SHA-256 (hex) of the exact prompt text the model continued: the
    rendered chat plus the prefill, before tokenization (a tokenizer may add the model's BOS
    token; ``describe()`` says whether). A backend whose server renders the chat itself hashes
    what it sent instead (see that backend's ``describe()``).

    Example::

        [c] = backend.generate([chat(("user", "Hi"))], GenParams(max_new_tokens=8))
        print(c.text, c.completion_tokens, c.finish_reason)
    """

    text: str
    prompt_tokens: int
    completion_tokens: int
    seconds: float
    finish_reason: FinishReason
    cached_tokens: int = 0  # prompt tokens whose KV state was reused, not recomputed
    error: str | None = None
    error_kind: FailureKind | None = None  # set with `error`; None reads as "upstream"
    extra: dict[str, object] = field(default_factory=dict)
    prompt_sha256: str | None = None
    batch_seconds: float = 0.0


def sha256_text(text: str) -> str:
    """SHA-256 hex digest of `text` encoded as UTF-8 (the prompt hash of `Completion`)."""
    import hashlib

    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def with_batch_seconds(completions: list[Completion], seconds: float) -> list[Completion]:
    """The same completions with `batch_seconds` set to the wall time of their call."""
    from dataclasses import replace

    return [replace(c, batch_seconds=seconds) for c in completions]


def describe_backend(backend: object) -> dict[str, object]:
    """What a run's manifest should record about a backend: its ``describe()`` if it has one.

    Every built-in backend's ``describe()`` returns a JSON-ready dict with at least ``name``,
    ``renderer`` (how prompts are rendered) and ``notes`` (decoding fields a server or library
    ignores or renames, and any fallback taken); never a secret.
    """
    describe = getattr(backend, "describe", None)
    if callable(describe):
        return dict(describe())
    return {"name": getattr(backend, "name", type(backend).__name__), "notes": []}


@runtime_checkable
class Backend(Protocol):
    """What every backend provides: a `name` and `generate`, one `Completion` per chat.

    Batching, caching and concurrency are the backend's business; a request that fails comes
    back as a `Completion` with `error` set, and a backend that cannot work at all (say, an
    unreachable server) raises `BackendError`. Optional: an int attribute ``parallel_calls``,
    how many `generate` calls it serves usefully at once (see `parallel_calls()`); the engine
    then calls it from that many threads, so such a backend must be safe to call from them.

    Example (a backend of your own)::

        class Echo:
            name = "echo"
            def generate(self, chats, params):
                return [Completion(c[-1].content, 0, 0, 0.0, "stop") for c in chats]
    """

    name: str

    def generate(self, chats: Sequence[Chat], params: GenParams) -> list[Completion]:
        """One completion per chat, in the order of `chats`."""
        ...


def parallel_calls(backend: object) -> int:
    """How many `generate` calls `backend` serves usefully at the same time: its
    ``parallel_calls`` attribute, 1 when it has none. A backend that sends each chat to a
    server as its own request sets it (`OpenAIBackend`: its ``concurrency``), so the engine
    runs a step's calls of *different* generation parameters together instead of one after
    another; a backend that computes in process leaves it out (its calls would only queue)."""
    n = getattr(backend, "parallel_calls", 1)
    return n if isinstance(n, int) and not isinstance(n, bool) and n >= 1 else 1


def get_backend(spec: str, **options: object) -> Backend:
    """Resolve a model spec to a backend; heavy libraries load only here.

    Arguments:
        spec: ``llamacpp/smollm2`` (the embedded model), ``llamacpp/<file.gguf>``,
            ``hf/<hub id or path>``, or ``openai/<model>`` (with ``base_url``).
        options: backend options (``base_url``, ``template``, ``concurrency``, ...); options
            set to None are left out, so callers can pass optional flags straight through.

    Returns:
        A `Backend`: ``generate(chats, params)`` gives one `Completion` per chat.

    Raises `ModelSpecError` for an unknown spec, an option the backend does not take, or
    ``base_url`` given to a backend that serves no URL.

    Example::

        backend = get_backend("llamacpp/smollm2")
        [c] = backend.generate([chat(("user", "Hi"))], GenParams(max_new_tokens=16))
    """
    from selfcorrect.specs import SpecError, parse

    options = {k: v for k, v in options.items() if v is not None}
    try:
        parsed = parse("model", spec)
    except SpecError as exc:
        raise ModelSpecError(str(exc)) from None
    if "base_url" in options and parsed.kind != "openai":
        raise ModelSpecError(f"--base-url only applies to openai/<model> specs, not {spec!r}")
    import importlib

    module, name = BACKENDS[parsed.kind]
    cls = getattr(importlib.import_module(module), name)
    options = _as_annotated(cls, options)
    try:
        return cls(parsed.arg, **options) if parsed.arg else cls(**options)  # type: ignore[no-any-return]
    except TypeError as exc:  # an option the backend does not take
        raise ModelSpecError(f"{spec}: {exc}".replace(".__init__() ", " ")) from exc


def _as_annotated(cls: type, options: dict[str, object]) -> dict[str, object]:
    """Options read from text as numbers (``template=1``) become text again where the backend
    takes only text, so a backend never sees a number where it expects a file name."""
    import typing

    try:
        hints = typing.get_type_hints(cls.__init__)  # type: ignore[misc]
    except Exception:  # unresolvable annotations: leave the options as they are
        return options
    out = dict(options)
    for key, value in options.items():
        hint = hints.get(key)
        if hint is None or isinstance(value, str) or not isinstance(value, (int, float)):
            continue
        accepted = set(typing.get_args(hint)) or {hint}
        if str in accepted and not accepted & {int, float, bool}:
            out[key] = str(value).lower() if isinstance(value, bool) else str(value)
    return out


# prefix -> (module, class); modules are imported only when their backend is used
BACKENDS = {
    "llamacpp": ("selfcorrect.backends.llamacpp", "LlamaCppBackend"),
    "hf": ("selfcorrect.backends.hf", "HFBackend"),
    "openai": ("selfcorrect.backends.openai_compat", "OpenAIBackend"),
    "scripted": ("selfcorrect.backends.scripted", "ScriptedBackend"),
}
