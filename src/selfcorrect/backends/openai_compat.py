"""Any OpenAI-compatible server (vLLM, llama.cpp server, Ollama, OpenAI) via the `openai` client.

Requests in a batch run concurrently (bounded by `concurrency`), each with a timeout. Transient
failures (connection errors, timeouts, HTTP 408/409/429/5xx, malformed responses) are retried with
exponential backoff and jitter, honouring ``Retry-After``; other 4xx errors are not retried. A
request that still fails becomes a `Completion` with ``error`` set (the study records the sample
as failed and a rerun retries it); when *every* request of a batch failed to connect, the server
is unreachable and `BackendError` stops the run with a clear message.

Assistant prefill: ``prefill_mode="continue"`` sends the prefill as a final assistant message with
vLLM's ``continue_final_message``; ``prefill_mode="completions"`` renders the chat locally with
``template`` (named or Jinja) and uses the completions endpoint (works with any server, e.g. the
llama.cpp server). The API key is read from the environment variable `api_key_env` and is never
stored in run directories.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from collections.abc import Sequence
from typing import Any

from selfcorrect.backends.base import BackendError, Chat, Completion, GenParams
from selfcorrect.backends.templates import CHATML, render_chat, resolve_template

TRANSIENT_STATUS = {408, 409, 429, 500, 502, 503, 504}
PREFILL_MODES = ("continue", "completions")


class _Failure(Exception):
    def __init__(
        self,
        message: str,
        *,
        transient: bool,
        connect: bool = False,
        retry_after: float | None = None,
    ):
        super().__init__(message)
        self.transient = transient
        self.connect = connect
        self.retry_after = retry_after


class OpenAIBackend:
    def __init__(
        self,
        model: str,
        *,
        base_url: str | None = None,
        api_key_env: str = "OPENAI_API_KEY",
        concurrency: int = 8,
        timeout: float = 120.0,
        max_retries: int = 4,
        backoff: float = 0.5,
        prefill_mode: str = "continue",
        template: str | None = None,
    ) -> None:
        try:
            import openai  # noqa: F401
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise BackendError(
                "the openai backend needs the openai package: pip install 'selfcorrect[openai]'"
            ) from exc
        if concurrency < 1:
            raise ValueError(f"concurrency must be >= 1, got {concurrency}")
        if prefill_mode not in PREFILL_MODES:
            raise ValueError(
                f"prefill_mode must be one of {', '.join(PREFILL_MODES)}, got {prefill_mode!r}"
            )
        self.name = f"openai/{model}"
        self.model = model
        self.base_url = base_url or os.environ.get("OPENAI_BASE_URL") or "https://api.openai.com/v1"
        self._api_key = os.environ.get(api_key_env) or "EMPTY"
        self.concurrency = concurrency
        self.timeout = timeout
        self.max_retries = max_retries
        self.backoff = backoff
        self.prefill_mode = prefill_mode
        self.template = resolve_template(template or CHATML)
        self.requests = 0  # HTTP attempts made, retries included

    def __repr__(self) -> str:  # never show the key
        return f"OpenAIBackend({self.model!r}, base_url={self.base_url!r})"

    def generate(self, chats: Sequence[Chat], params: GenParams) -> list[Completion]:
        results = asyncio.run(self._generate_all(chats, params))
        if results and all(isinstance(r, _Failure) and r.connect for r in results):
            raise BackendError(f"cannot reach the server at {self.base_url}: {results[0]}")
        return [
            r if isinstance(r, Completion) else Completion("", 0, 0, 0.0, "error", error=str(r))
            for r in results
        ]

    async def _generate_all(
        self, chats: Sequence[Chat], params: GenParams
    ) -> list[Completion | _Failure]:
        from openai import AsyncOpenAI

        client = AsyncOpenAI(
            base_url=self.base_url, api_key=self._api_key, timeout=self.timeout, max_retries=0
        )
        gate = asyncio.Semaphore(self.concurrency)

        async def one(c: Chat) -> Completion | _Failure:
            async with gate:
                return await self._with_retries(client, c, params)

        try:
            return list(await asyncio.gather(*(one(c) for c in chats)))
        finally:
            await client.close()

    async def _with_retries(self, client: Any, c: Chat, params: GenParams) -> Completion | _Failure:
        failure: _Failure | None = None
        for attempt in range(self.max_retries + 1):
            try:
                return await self._request(client, c, params)
            except _Failure as exc:
                failure = exc
            if not failure.transient or attempt == self.max_retries:
                break
            delay = self.backoff * 2**attempt * (1 + random.random() / 2)
            if failure.retry_after is not None:
                delay = max(delay, min(failure.retry_after, 30.0))
            await asyncio.sleep(min(delay, 30.0))
        assert failure is not None
        return failure

    async def _request(self, client: Any, c: Chat, params: GenParams) -> Completion:
        import openai

        self.requests += 1
        common: dict[str, Any] = {
            "model": self.model,
            "max_tokens": params.max_new_tokens,
            "temperature": params.temperature,
            "top_p": params.top_p,
            "seed": params.seed,
        }
        if params.stop:
            common["stop"] = list(params.stop)
        start = time.perf_counter()
        try:
            if self.prefill_mode == "completions":
                prompt = render_chat(self.template, c, prefill=params.prefill)
                response = await client.completions.create(prompt=prompt, **common)
                choices = _choices(response)
                text = choices[0].text if choices else None
            else:
                messages = [{"role": m.role, "content": m.content} for m in c]
                extra: dict[str, Any] = {}
                if params.prefill:
                    messages.append({"role": "assistant", "content": params.prefill})
                    extra = {"continue_final_message": True, "add_generation_prompt": False}
                response = await client.chat.completions.create(
                    messages=messages, extra_body=extra or None, **common
                )
                choices = _choices(response)
                text = choices[0].message.content if choices else None
        except openai.APIStatusError as exc:
            retry_after = _retry_after(exc.response.headers.get("retry-after"))
            raise _Failure(
                f"HTTP {exc.status_code}: {str(exc)[:200]}",
                transient=exc.status_code in TRANSIENT_STATUS,
                retry_after=retry_after,
            ) from exc
        except openai.APITimeoutError as exc:
            raise _Failure(f"timed out after {self.timeout}s", transient=True) from exc
        except openai.APIConnectionError as exc:
            raise _Failure(
                f"connection failed ({exc.__cause__ or exc})", transient=True, connect=True
            ) from exc
        except (openai.APIResponseValidationError, ValueError) as exc:
            raise _Failure(f"malformed response ({exc})", transient=True) from exc
        if text is None:
            raise _Failure("the server returned no completion", transient=True)
        usage = getattr(response, "usage", None)
        finish = response.choices[0].finish_reason
        return Completion(
            text=text,
            prompt_tokens=int(getattr(usage, "prompt_tokens", 0) or 0),
            completion_tokens=int(getattr(usage, "completion_tokens", 0) or 0),
            seconds=time.perf_counter() - start,
            finish_reason="length" if finish == "length" else "stop",
        )


def _choices(response: Any) -> list[Any]:
    """The choices of a parsed response; a body that did not parse as one is malformed."""
    choices = getattr(response, "choices", None)
    if not isinstance(choices, list):
        raise _Failure(f"malformed response ({str(response)[:80]!r})", transient=True)
    return choices


def _retry_after(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None
