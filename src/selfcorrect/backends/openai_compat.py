"""Any OpenAI-compatible server (vLLM, llama.cpp server, Ollama, OpenAI) via the `openai` client.

Requests run concurrently, at most `concurrency` in flight per backend instance: every call
(from any thread) goes through one event loop, on a thread of the backend's own, with one HTTP
client and its pooled connections, so calls made together (the engine makes a step's calls of
different parameters together: ``parallel_calls``) share the bound and the connections.
Time limits: ``timeout`` bounds each wait for data (connect, each read); ``deadline`` bounds a
whole request, connect to last byte, retries and waits included, so a server that accepts and
never answers, or trickles a byte at a time, cannot hold a request longer than ``deadline``
seconds. Transient failures
(connection errors, timeouts, HTTP 408/409/429/5xx, malformed bodies) are retried with
exponential backoff and jitter, honouring ``Retry-After`` (seconds or an HTTP date) as long as
the deadline allows; at most ``max_retries`` per request and ``retry_budget`` retries and
``retry_seconds`` seconds of retrying per backend instance (that is, per run). Other 4xx are not
retried, nor are local errors (a chat the template rejects, a request that cannot be encoded),
which are reported as what they are. A request that still fails becomes a `Completion` with
``error`` set; when *every* request of a batch failed to connect or timed out, or every one was
refused as unauthorised, `BackendError` stops the run with one line. Error texts never hold the
API key or a password from the URL (scrubbed before they leave this module).

Prompts: ``prefill_mode="completions"`` renders the chat locally with
`selfcorrect.backends.render` (``template=`` a built-in name, the model's GGUF file, or Jinja;
``preset=``; ``system=``) and uses the completions endpoint: with ``template=<the model's
.gguf>`` the text is byte-identical to the in-process backends' (tested against
``llama_cpp.server``). ``prefill_mode="continue"`` (default, vLLM) sends the messages, with the
prefill as a final assistant message and ``continue_final_message``; the server renders them
with its own template. Decoding: every `GenParams` field is sent; ``top_k``, ``min_p`` and the
repetition penalty go as extra fields under both servers' names (``repeat_penalty`` for
llama.cpp, ``repetition_penalty`` for vLLM), which OpenAI's own API rejects: use
``sampling_fields="standard"`` there. ``describe()`` lists what a server may ignore.

The API key is read from the environment variable `api_key_env` and is never stored.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
import threading
import time
from collections.abc import Sequence
from typing import Any

from selfcorrect.backends.base import (
    BackendError,
    Chat,
    Completion,
    GenParams,
    ModelSpecError,
    with_batch_seconds,
)
from selfcorrect.backends.http_faults import (
    AUTH_STATUS,
    TRANSIENT_STATUS,
    Failure,
    choices_of,
    is_local,
    retry_after_seconds,
    scrub,
)
from selfcorrect.backends.openai_payload import Payload, make_payload, request_body
from selfcorrect.backends.render import Renderer, TemplateError, make_renderer
from selfcorrect.backends.sessions import SessionKeys

PREFILL_MODES = ("continue", "completions")
SAMPLING_FIELDS = ("extended", "standard")
log = logging.getLogger("selfcorrect.backends")


class OpenAIBackend:
    def __init__(
        self,
        model: str,
        *,
        base_url: str | None = None,
        api_key_env: str = "OPENAI_API_KEY",
        concurrency: int = 8,
        timeout: float = 120.0,
        deadline: float = 300.0,
        max_retries: int = 4,
        backoff: float = 0.5,
        retry_budget: int = 100,
        retry_seconds: float = 1800.0,
        prefill_mode: str = "continue",
        template: str | None = None,
        system: str | None = None,
        preset: str | None = None,
        eos_after_prefill: bool | None = None,
        sampling_fields: str = "extended",
        reset_server_cache: bool = False,
        session_header: str = "X-Session-ID",
    ) -> None:
        try:
            import openai  # noqa: F401
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise BackendError(
                "the openai backend needs the openai package: pip install 'selfcorrect[openai]'"
            ) from exc
        self.name = f"openai/{model}"
        if concurrency < 1 or max_retries < 0 or retry_budget < 0 or backoff < 0:
            raise ValueError("concurrency must be >= 1; max_retries, retry_budget, backoff >= 0")
        if timeout <= 0 or deadline <= 0 or retry_seconds < 0:
            raise ValueError(
                f"need timeout > 0, deadline > 0 and retry_seconds >= 0, got timeout={timeout}, "
                f"deadline={deadline}, retry_seconds={retry_seconds}"
            )
        if prefill_mode not in PREFILL_MODES:
            raise ValueError(
                f"prefill_mode must be one of {', '.join(PREFILL_MODES)}, got {prefill_mode!r}"
            )
        if sampling_fields not in SAMPLING_FIELDS:
            raise ValueError(
                f"sampling_fields must be extended or standard, not {sampling_fields!r}"
            )
        self.model = model
        self.base_url = base_url or os.environ.get("OPENAI_BASE_URL") or "https://api.openai.com/v1"
        self._api_key = os.environ.get(api_key_env) or "EMPTY"
        if not (self._api_key.isascii() and self._api_key.isprintable()):
            raise BackendError(
                f"the API key in ${api_key_env} cannot be sent in an HTTP header: it holds a "
                "non-ASCII or control character (a stray newline?)"
            )
        self.concurrency = concurrency
        self.parallel_calls = concurrency  # calls worth making at once (see base.parallel_calls)
        self._loop = _LoopThread()
        self._client: Any = None  # made on the loop, with the gate, at the first request
        self._gate = asyncio.Semaphore(concurrency)  # replaced with the client
        self._client_loop: asyncio.AbstractEventLoop | None = None  # the loop both belong to
        self.timeout = min(timeout, deadline)
        self.deadline = deadline
        self.max_retries = max_retries
        self.backoff = backoff
        self.retry_budget = retry_budget
        self.retry_seconds = retry_seconds
        self.prefill_mode = prefill_mode
        self.sampling_fields = sampling_fields
        self.reset_server_cache = reset_server_cache
        # every request of a conversation names the same session (the `user` field and this
        # header), so a prefix-aware router keeps its rounds on one replica
        self.session_header = session_header
        self.sessions = SessionKeys()
        self.requests = 0  # HTTP attempts made, retries included (cache resets not counted)
        self.retries = 0  # retries made by this instance (bounded by retry_budget)
        self.retry_spent = 0.0  # seconds spent retrying (waits + retried attempts), summed
        self.notes: list[str] = []
        self.renderer: Renderer | None = None
        self.system = system
        if prefill_mode == "completions":
            if template is None and preset is None:
                log.warning(
                    "%s: prefill_mode=completions renders prompts locally and no template was "
                    "given, so prompts use ChatML; pass template=NAME or the model's .gguf file "
                    "to render as the model does",
                    self.name,
                )
                self.notes.append("no template given: prompts rendered with ChatML")
                template = "chatml"
            self.renderer = make_renderer(
                self.name,
                None,
                template=template,
                system=system,
                eos_after_prefill=eos_after_prefill,
                preset=preset,
            )
        elif template is not None or preset is not None or eos_after_prefill:
            raise ModelSpecError(
                f"{self.name}: template/preset/eos_after_prefill need prefill_mode=completions "
                "(in continue mode the server renders the chat with its own template)"
            )
        from selfcorrect.backends.presets import get_preset

        self.preset = get_preset(preset) if preset else None

    def __repr__(self) -> str:  # never show the key
        return f"OpenAIBackend({self.model!r}, base_url={self._scrub(self.base_url)!r})"

    # -- what the manifest records -------------------------------------------------------

    def describe(self) -> dict[str, Any]:
        notes = list(self.notes)
        if self.sampling_fields == "extended":
            notes.append(
                "top_k, min_p and repeat_penalty/repetition_penalty are sent as extra fields; "
                "llama_cpp.server reads top_k, min_p, repeat_penalty; vLLM reads top_k, min_p, "
                "repetition_penalty; a server ignores fields it does not know without saying so"
            )
        else:
            notes.append(
                "standard fields only: top_k, min_p and repeat_penalty are not sent (requests "
                "that set them are refused)"
            )
        if self.prefill_mode == "continue":
            notes.append(
                "the server renders the chat with its own template (prompt_sha256 hashes the "
                "JSON messages sent); use prefill_mode=completions with template=... for "
                "prompts identical to the in-process backends"
            )
        else:
            notes.append(
                "prompt rendered locally; prompt_sha256 hashes that text (a leading BOS text "
                "is not sent, since servers add the model's BOS themselves)"
            )
        if self.reset_server_cache:
            notes.append(
                "before each request a 1-token request resets llama_cpp.server's reuse of the "
                "previous request's KV state, so every prompt is evaluated as a prompt"
            )
        return {
            "name": self.name,
            "backend": "OpenAI-compatible HTTP",
            "base_url": self._scrub(self.base_url),
            "prefill_mode": self.prefill_mode,
            "renderer": self.renderer.describe() if self.renderer else "server",
            "preset": self.preset.describe() if self.preset else None,
            "sampling_fields": self.sampling_fields,
            "limits": {
                "timeout_s": self.timeout,
                "deadline_s": self.deadline,
                "max_retries": self.max_retries,
                "retry_budget": self.retry_budget,
                "retry_seconds": self.retry_seconds,
                "concurrency": self.concurrency,
            },
            "notes": notes,
        }

    # -- secrets ---------------------------------------------------------------------------

    def _scrub(self, text: str) -> str:
        return scrub(text, self._api_key)

    # -- generation ------------------------------------------------------------------------

    def generate(self, chats: Sequence[Chat], params: GenParams) -> list[Completion]:
        body = self._body(params)
        start = time.perf_counter()
        results = self._loop.run(self._generate_all(chats, params, body))
        wall = time.perf_counter() - start
        failures = [r for r in results if isinstance(r, Failure)]
        if results and len(failures) == len(results):
            kinds = {f.kind for f in failures}
            url = self._scrub(self.base_url)
            if kinds <= {"connect", "timeout"}:
                what = "cannot reach" if kinds == {"connect"} else "no answer in time from"
                raise BackendError(
                    f"{self.name}: {what} the server at {url}: all {len(failures)} request(s) "
                    f"failed, e.g. {failures[0]}",
                    kind="unreachable" if kinds == {"connect"} else "timeout",
                )
            if kinds == {"auth"}:
                raise BackendError(
                    f"{self.name}: the server at {url} refused the credentials: {failures[0]}"
                )
        out = [
            r
            if isinstance(r, Completion)
            else Completion("", 0, 0, 0.0, "error", error=str(r), error_kind=r.failure_kind())
            for r in results
        ]
        return with_batch_seconds(out, wall)

    def _body(self, params: GenParams) -> dict[str, Any]:
        return request_body(self.model, params, self.sampling_fields, self.name)

    def _payload(self, c: Chat, params: GenParams) -> Payload:
        return make_payload(c, params, self.renderer, self.system)

    async def _generate_all(
        self, chats: Sequence[Chat], params: GenParams, body: dict[str, Any]
    ) -> list[Completion | Failure]:
        client, gate = self._connection()

        async def one(c: Chat) -> Completion | Failure:
            try:
                payload = self._payload(c, params)
            except TemplateError as exc:  # local: the same chat would fail again
                return Failure(str(exc), kind="template", transient=False)
            session = self.sessions.key(c)
            request = {**body, "user": session, "extra_headers": {self.session_header: session}}
            async with gate:
                attempts = [0]
                try:
                    return await asyncio.wait_for(
                        self._with_retries(client, payload, request, attempts), self.deadline
                    )
                except asyncio.TimeoutError:
                    return Failure(
                        f"no complete answer within the deadline of {self.deadline:g}s "
                        f"({attempts[0]} attempt(s))",
                        kind="timeout",
                        transient=True,
                    )

        return list(await asyncio.gather(*(one(c) for c in chats)))

    def _connection(self) -> tuple[Any, asyncio.Semaphore]:
        """The client and the in-flight gate, made once, on the loop thread (that is, in the
        event loop every request of this backend runs in)."""
        from openai import AsyncOpenAI

        loop = asyncio.get_running_loop()
        if self._client_loop is not loop:  # none yet, closed, or made in a parent process
            self._client = AsyncOpenAI(
                base_url=self.base_url, api_key=self._api_key, timeout=self.timeout, max_retries=0
            )
            self._gate, self._client_loop = asyncio.Semaphore(self.concurrency), loop
        return self._client, self._gate

    def close(self) -> None:
        """Close the HTTP client and stop the loop thread (a later call starts them again)."""
        client, self._client, self._client_loop = self._client, None, None
        self._loop.stop(client.close() if client is not None else None)

    async def _with_retries(
        self, client: Any, payload: Payload, body: dict[str, Any], attempts: list[int]
    ) -> Completion | Failure:
        start = time.monotonic()
        failure: Failure | None = None
        for attempt in range(self.max_retries + 1):
            retry_start = time.monotonic()
            if failure is not None:
                if self.retries >= self.retry_budget or self.retry_spent >= self.retry_seconds:
                    return Failure(
                        f"{failure} (not retried: this backend's retry budget is spent)",
                        kind=failure.kind,
                        transient=True,
                        status=failure.status,
                    )
                delay = min(30.0, self.backoff * 2 ** (attempt - 1)) * (1 + random.random() / 2)
                if failure.retry_after is not None:
                    delay = max(delay, failure.retry_after)
                left = self.deadline - (time.monotonic() - start)
                if failure.retry_after is not None and failure.retry_after >= left:
                    return Failure(
                        f"{failure} (the server asked to retry after {failure.retry_after:g}s, "
                        f"past the {self.deadline:g}s deadline)",
                        kind=failure.kind,
                        transient=True,
                        status=failure.status,
                    )
                self.retries += 1
                await asyncio.sleep(delay)
            attempts[0] += 1
            try:
                completion = await self._request(client, payload, body)
                return _with_latency(completion, time.monotonic() - start, attempts[0])
            except Failure as exc:
                failure = exc
            finally:
                if attempt:
                    self.retry_spent += time.monotonic() - retry_start
            if not failure.transient:
                break
        assert failure is not None
        return failure

    async def _request(self, client: Any, payload: Payload, body: dict[str, Any]) -> Completion:
        import openai

        try:
            if self.reset_server_cache:
                await self._reset_cache(client, payload)
            self.requests += 1
            if payload.prompt is not None:
                response = await client.completions.create(prompt=payload.prompt, **body)
                choices = choices_of(response)
                text = choices[0].text if choices else None
            else:
                extra = dict(body.get("extra_body") or {})
                if payload.messages and payload.messages[-1]["role"] == "assistant":
                    extra.update(continue_final_message=True, add_generation_prompt=False)
                response = await client.chat.completions.create(
                    messages=payload.messages,
                    **{**body, "extra_body": extra or None},
                )
                choices = choices_of(response)
                text = choices[0].message.content if choices else None
        except openai.APIStatusError as exc:
            status = exc.status_code
            raise Failure(
                self._scrub(f"HTTP {status}: {str(exc)[:300]}"),
                kind="auth" if status in AUTH_STATUS else "status",
                transient=status in TRANSIENT_STATUS,
                retry_after=retry_after_seconds(exc.response.headers.get("retry-after")),
                status=status,
            ) from None
        except openai.APITimeoutError:
            raise Failure(
                f"no data for {self.timeout:g}s (read timeout)", kind="timeout", transient=True
            ) from None
        except openai.APIConnectionError as exc:
            cause = exc.__cause__
            if is_local(cause):
                raise Failure(
                    self._scrub(f"the request could not be sent ({type(cause).__name__}: {cause})"),
                    kind="local",
                    transient=False,
                ) from None
            raise Failure(
                self._scrub(f"connection failed ({cause or exc})"), kind="connect", transient=True
            ) from None
        except (openai.APIResponseValidationError, json.JSONDecodeError) as exc:
            raise Failure(
                self._scrub(f"malformed response ({str(exc)[:200]})"),
                kind="malformed",
                transient=True,
            ) from None
        if text is None:
            raise Failure("the server returned no completion", kind="malformed", transient=True)
        usage = getattr(response, "usage", None)
        finish = response.choices[0].finish_reason
        return Completion(
            text=text,
            prompt_tokens=int(getattr(usage, "prompt_tokens", 0) or 0),
            completion_tokens=int(getattr(usage, "completion_tokens", 0) or 0),
            seconds=0.0,  # set by the caller: the request's whole latency
            finish_reason="length" if finish == "length" else "stop",
            prompt_sha256=payload.digest,
        )

    async def _reset_cache(self, client: Any, payload: Payload) -> None:
        """One token from a prompt whose first character differs from this request's, so
        llama_cpp.server's reuse of the previous request's state cannot reach into tokens it
        evaluated one at a time while generating (see the llamacpp module docstring)."""
        first = (payload.prompt or "")[:1]
        await client.completions.create(
            model=self.model,
            prompt="," if first == "." else ".",
            max_tokens=1,
            temperature=0.0,
            extra_body={"repeat_penalty": 1.0},
        )


def _with_latency(c: Completion, seconds: float, attempts: int) -> Completion:
    from dataclasses import replace

    return replace(c, seconds=seconds, extra={**c.extra, "attempts": attempts})


class _LoopThread:
    """An event loop running on a daemon thread of its own, started at the first `run`: a
    coroutine submitted from any thread runs there, so everything it touches (the HTTP client,
    the gate, the retry counters) lives in one thread. The thread ends with `stop`, or when the
    owner is garbage-collected."""

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pid = 0  # the process that started the loop (a forked child has no such thread)
        self._lock = threading.Lock()
        self._finalizer: Any = None

    def run(self, coro: Any) -> Any:
        """Run `coro` on the loop and wait for its result (an interrupt cancels it)."""
        future = asyncio.run_coroutine_threadsafe(coro, self._started())
        try:
            return future.result()
        except BaseException:
            future.cancel()
            raise

    def _started(self) -> asyncio.AbstractEventLoop:
        import weakref

        with self._lock:
            if self._loop is None or self._loop.is_closed() or self._pid != os.getpid():
                loop = asyncio.new_event_loop()
                thread = threading.Thread(
                    target=_serve_forever, args=(loop,), name="selfcorrect-http", daemon=True
                )
                thread.start()
                self._loop, self._pid = loop, os.getpid()
                self._finalizer = weakref.finalize(self, loop.call_soon_threadsafe, loop.stop)
            return self._loop

    def stop(self, last: Any = None) -> None:
        """Run the coroutine `last` (if any) on the loop, then stop the loop and its thread."""
        with self._lock:
            loop, self._loop = self._loop, None
        if loop is None or loop.is_closed():
            if last is not None:
                last.close()  # never awaited: nothing to close on a loop that is gone
            return
        if last is not None:
            asyncio.run_coroutine_threadsafe(last, loop).result()
        if self._finalizer is not None:
            self._finalizer()  # stops the loop; the thread closes it


def _serve_forever(loop: asyncio.AbstractEventLoop) -> None:
    asyncio.set_event_loop(loop)
    try:
        loop.run_forever()
    finally:
        loop.close()
