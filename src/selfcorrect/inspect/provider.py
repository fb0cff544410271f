"""The ``selfcorrect/<spec>`` model provider: Check as Context inside ``generate``.

``--model selfcorrect/llamacpp/smollm2 -M rounds=1 -M check=self`` wraps any selfcorrect backend
(``llamacpp/...``, ``hf/...``, ``openai/...`` with ``--model-base-url``): each ``generate`` call
becomes one conversation (a leading system message and earlier turns kept, the last user message
is the question, a trailing assistant message is a prefill the answer continues), CaC runs on it
through the engine, and the reply is the answer the final-answer policy keeps. Every round goes
into the output's metadata (key ``selfcorrect``, `selfcorrect.inspect.rounds`), so any task,
agent or scorer gets CaC with no edits. With ``-M rounds=0`` it is a plain offline provider for
the in-process llama.cpp and transformers backends.

Concurrent ``generate`` calls (Inspect runs samples concurrently) share backend calls round by
round through the server's micro-batcher (`selfcorrect.serve.batcher.Batcher`); one backend
and one batcher per model spec and options serve every provider instance in the process.

``-M`` options: ``rounds`` (default 1), ``check`` (self, verdict, model:SPEC, none; no oracle:
a provider has no ground truth), ``check_prompt``, ``yes_means`` (fail or pass: what "yes" to
a verdict prompt means; "fail" unless told, as for the default "Is your previous answer
wrong?"), ``reask`` (``{question}`` is replaced), ``final`` (last, first_accepted),
``check_max_tokens`` (default 256); anything else goes to the backend (``n_ctx``, ``template``,
``concurrency``, ``prefill_mode``...). A ``model:openai/...`` checker is served from the
provider's base URL (``--model-base-url``), as the answering model is.

Generation settings: ``max_tokens``, ``temperature``, ``top_p``, ``top_k``, ``seed``,
``stop_seqs``, ``frequency_penalty`` and ``presence_penalty`` reach the backend; settings that
change what an answer is and that CaC cannot honour (`UNSUPPORTED`: several choices, logprobs,
logit bias, a response schema, extra request fields) are an error, never ignored, as are tools.
"""

from __future__ import annotations

import threading
import uuid
from dataclasses import replace
from typing import Any

from inspect_ai.model import (
    ChatMessage,
    GenerateConfig,
    ModelAPI,
    ModelOutput,
    ModelUsage,
)
from inspect_ai.tool import ToolChoice, ToolInfo

from selfcorrect.backends.base import Backend, GenParams, Message, get_backend
from selfcorrect.cac.check_cache import CheckCache
from selfcorrect.cac.checks import (
    DEFAULT_CHECK_PARAMS,
    Check,
    CheckSettings,
    YesMeans,
    make_check,
    require_verdicts,
)
from selfcorrect.cac.conversation import Conversation
from selfcorrect.cac.engine import CaCConfig
from selfcorrect.inspect.rounds import OUTPUT_KEY, from_conversation
from selfcorrect.serve.batcher import Batcher
from selfcorrect.specs import parse, served_options

DEFAULT_MAX_TOKENS = 256
STOP_REASONS = {"stop": "stop", "length": "max_tokens"}
# GenerateConfig fields that ask for what a CaC answer cannot give: refused when set, as the
# server refuses them (reasoning hints, caching and connection settings are not about the
# answer and are left to Inspect)
UNSUPPORTED = (
    "num_choices",
    "best_of",
    "logprobs",
    "top_logprobs",
    "prompt_logprobs",
    "logit_bias",
    "response_schema",
    "extra_body",
    "modalities",
)

_shared: dict[tuple[str, tuple[tuple[str, str], ...]], tuple[Backend, Batcher]] = {}
_shared_lock = threading.Lock()


def shared_backend(spec: str, options: dict[str, Any]) -> tuple[Backend, Batcher]:
    """One backend (and the batcher that owns its calls) per spec and options, per process:
    in-process models are loaded once and never called from two threads at a time."""
    key = (spec, tuple(sorted((k, repr(v)) for k, v in options.items())))
    with _shared_lock:
        entry = _shared.get(key)
        if entry is None or not entry[1].alive:  # new, or its worker thread died
            backend = entry[0] if entry else get_backend(spec, **options)
            batcher = Batcher(backend)
            batcher.start()
            _shared[key] = (backend, batcher)
        return _shared[key]


class CaCModelAPI(ModelAPI):
    """An Inspect model provider that runs Check as Context over a selfcorrect backend."""

    def __init__(
        self,
        model_name: str,
        base_url: str | None = None,
        api_key: str | None = None,
        config: GenerateConfig = GenerateConfig(),
        rounds: int = 1,
        check: str = "self",
        check_prompt: str | None = None,
        yes_means: YesMeans = "fail",
        reask: str | None = None,
        final: str = "last",
        check_max_tokens: int | None = None,
        **backend_options: Any,
    ) -> None:
        super().__init__(model_name, base_url, api_key, [], config)
        parse("model", model_name)  # a typo names the valid kinds before anything loads
        spec = parse("check", str(check))
        if spec.kind == "oracle":
            raise ValueError(
                "check=oracle:P needs ground truth, which a model provider has not; use the "
                "selfcorrect/cac solver (-S check=oracle:P) or check=self, verdict, model:SPEC"
            )
        require_verdicts(spec, final)
        self.cac = CaCConfig(
            rounds=int(rounds),
            reask_template=reask or CaCConfig().reask_template,
            final_policy=final,  # type: ignore[arg-type]
        )
        if check_max_tokens is not None and int(check_max_tokens) < 1:
            raise ValueError(f"check_max_tokens must be >= 1, got {check_max_tokens}")
        self.check_spec = spec
        self.check_settings = CheckSettings(
            prompt=check_prompt,
            verdict_prompt=check_prompt,
            yes_means=yes_means,
            # a model:openai/... checker is served where the answering model is, never from
            # OPENAI_BASE_URL or api.openai.com
            checker_options=served_options(spec, base_url),
        )
        self.check_max_tokens = int(check_max_tokens or DEFAULT_CHECK_PARAMS.max_new_tokens)
        options = dict(backend_options)
        if base_url:
            options["base_url"] = base_url
        self.backend, self.batcher = shared_backend(model_name, options)
        self._checks = CheckCache()  # equal settings share one check object, so one call
        self._model_check: Check | None = None  # model:SPEC: its checker is loaded once

    def max_tokens(self) -> int | None:
        return DEFAULT_MAX_TOKENS

    async def count_text_tokens(self, text: str) -> int:
        # A rough estimate (4 characters a token) for Inspect's compaction triggers; the
        # default would fetch a tiktoken vocabulary from the internet.
        return max(1, len(text) // 4)

    def _check(self, params: GenParams) -> Check | None:
        """One check object per set of check parameters, so concurrent requests share calls."""
        if not self.cac.rounds:
            return None
        return self._checks.get(params, lambda: self._build_check(params))

    def _build_check(self, params: GenParams) -> Check | None:
        settings = replace(self.check_settings, params=params)
        if self.check_spec.kind != "model":
            return make_check(self.check_spec, settings)
        if self._model_check is None:
            self._model_check = make_check(self.check_spec, settings)
        return replace(self._model_check, params=params)  # type: ignore[type-var]

    async def generate(
        self,
        input: list[ChatMessage],
        tools: list[ToolInfo],
        tool_choice: ToolChoice,
        config: GenerateConfig,
    ) -> ModelOutput:
        if tools:
            raise ValueError(f"selfcorrect/{self.model_name} does not support tool calling")
        chat = to_chat(input)
        prefill = ""
        if chat and chat[-1].role == "assistant":
            prefill, chat = chat[-1].content, chat[:-1]
        conv = Conversation.from_messages(f"inspect-{uuid.uuid4().hex[:12]}", chat)
        params = gen_params(config, prefill)
        check = self._check(
            replace(params, max_new_tokens=self.check_max_tokens, stop=(), prefill="").batch_key()
        )
        conv = await self.batcher.run(
            conv, check, replace(self.cac, answer=params, reanswer=params)
        )
        if conv.error is not None:
            raise RuntimeError(f"selfcorrect/{self.model_name}: {conv.error}")
        kept = conv.final_answer()
        assert kept is not None
        text = kept.content[len(prefill) :] if kept.content.startswith(prefill) else kept.content
        turns = [t for t in conv.turns if t.role == "assistant" and t.source != "context"]
        prompt_tokens = sum(t.prompt_tokens for t in turns)
        completion_tokens = sum(t.completion_tokens for t in turns)
        output = ModelOutput.from_content(
            model=self.model_name,
            content=text,
            stop_reason=STOP_REASONS.get(kept.finish_reason or "", "unknown"),  # type: ignore[arg-type]
        )
        output.usage = ModelUsage(
            input_tokens=prompt_tokens,
            output_tokens=completion_tokens,
            total_tokens=prompt_tokens + completion_tokens,
        )
        output.time = sum(t.seconds for t in turns)
        check_name = str(self.check_spec) if check is not None else "none"
        record = from_conversation(conv, check=check_name, final=self.cac.final_policy)
        output.metadata = {OUTPUT_KEY: record.to_dict()}
        return output


def gen_params(config: GenerateConfig, prefill: str) -> GenParams:
    """The answer's generation parameters from Inspect's config (unset fields: greedy, no
    top-k and no penalties); `ValueError` naming a setting the provider cannot honour."""
    for name in UNSUPPORTED:
        value = getattr(config, name)
        if value in (None, False, {}, []) or (name in ("num_choices", "best_of") and value == 1):
            continue
        raise ValueError(
            f"the selfcorrect provider cannot honour {name}={value!r}: CaC keeps one answer "
            "per generate call, as text only"
        )
    return GenParams(
        max_new_tokens=config.max_tokens or DEFAULT_MAX_TOKENS,
        temperature=config.temperature if config.temperature is not None else 0.0,
        top_p=config.top_p if config.top_p is not None else 1.0,
        top_k=config.top_k or 0,
        seed=config.seed if config.seed is not None else 0,
        stop=tuple(config.stop_seqs or ()),
        frequency_penalty=config.frequency_penalty or 0.0,
        presence_penalty=config.presence_penalty or 0.0,
        prefill=prefill,
    )


def to_chat(messages: list[ChatMessage]) -> tuple[Message, ...]:
    """Inspect messages as a selfcorrect chat (text only; tool messages are an error)."""
    out = []
    for m in messages:
        if m.role == "tool":
            raise ValueError("the selfcorrect provider takes no tool messages")
        if not isinstance(m.content, str):
            kinds = sorted({c.type for c in m.content} - {"text", "reasoning"})
            if kinds:
                raise ValueError(
                    f"the selfcorrect provider takes text only, not {', '.join(kinds)}"
                )
        out.append(Message(m.role, m.text))
    return tuple(out)
