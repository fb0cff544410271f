"""The ASGI app: OpenAI's chat-completions API with Check as Context behind it.

Endpoints: ``POST /v1/chat/completions`` (plain and ``stream: true``), ``GET /v1/models``,
``GET /health``. A request's messages become one conversation (system prompt and earlier turns
kept, the last user message is the question); CaC runs on it together with the other requests in
flight (`Batcher`); the reply's content is the answer the final-answer policy keeps. Errors are
never answers: an upstream or checker failure is a 502/503/504 error object, a bad request a 4xx
naming the field, and the server stays up.

Streaming: CaC needs a whole answer before it can check it, so the server runs every round
first and then sends the kept answer as server-sent events in chunks (buffered, not token by
token). The stream starts only when the outcome is known, so a failure is still an error status
(502/503/504), never a 200 stream.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from typing import Any

from selfcorrect.backends.base import BackendError, FailureKind, GenParams
from selfcorrect.cac.check_cache import MAX_CACHED_CHECKS, CheckCache
from selfcorrect.cac.checks import (
    Check,
    CheckSettings,
    ModelCheck,
    YesMeans,
    make_check,
    require_verdicts,
)
from selfcorrect.cac.conversation import Conversation, FinalPolicy
from selfcorrect.cac.engine import CaCConfig
from selfcorrect.serve.audit import AuditLog
from selfcorrect.serve.batcher import Batcher
from selfcorrect.serve.schema import (
    ChatRequest,
    RequestError,
    cac_summary,
    completion_body,
    error_body,
    parse_request,
    stream_chunks,
)
from selfcorrect.specs import Spec, parse

MAX_BODY_BYTES = 4 << 20


@dataclass(frozen=True)
class ServeConfig:
    """What the server runs: the model, the default CaC settings and the HTTP limits."""

    model: str
    rounds: int = 1
    check: Spec | str = "self"
    check_prompt: str | None = None
    yes_means: YesMeans = "fail"  # what "yes" to a verdict check prompt means
    reask: str = "Based on your review, answer the question again:\n{question}"
    final: FinalPolicy = "last"
    max_tokens: int = 256
    check_max_tokens: int = 256
    max_in_flight: int = 64
    batch_window_ms: float = 0.0
    max_body_bytes: int = MAX_BODY_BYTES
    served_names: tuple[str, ...] = ()
    base_url: str | None = None
    backend_options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        parse("model", self.model)
        object.__setattr__(self, "check", parse("check", self.check))
        if self.check.kind == "oracle":  # type: ignore[union-attr]
            raise ValueError("a server has no ground truth: use self, verdict, model:SPEC or none")
        require_verdicts(self.check, self.final)  # type: ignore[arg-type]
        CheckSettings(yes_means=self.yes_means)  # a ValueError unless fail or pass
        if not self.rounds >= 0:
            raise ValueError(f"rounds must be >= 0, got {self.rounds}")
        for name in ("max_tokens", "check_max_tokens", "max_in_flight", "max_body_bytes"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not 0 <= self.batch_window_ms <= 10_000:
            raise ValueError(f"batch_window_ms must be 0..10000, got {self.batch_window_ms}")

    @property
    def names(self) -> tuple[str, ...]:
        return self.served_names or (self.model,)


class CaCService:
    """Turns requests into CaC runs: chooses the check and config, caches check objects (so
    requests with the same settings share check calls), keeps the audit log."""

    def __init__(
        self,
        config: ServeConfig,
        batcher: Batcher,
        *,
        checker: ModelCheck | None = None,
        audit: AuditLog | None = None,
    ):
        self.config = config
        self.batcher = batcher
        self.audit = audit or AuditLog(None)
        self._checks = CheckCache(MAX_CACHED_CHECKS)  # equal settings, one check call
        self._default_checker = checker  # model:SPEC loaded once at start

    def check_for(
        self, spec: Spec, prompt: str | None, params: GenParams, yes_means: YesMeans = "fail"
    ) -> Check | None:
        key = (str(spec), prompt, yes_means, params)
        return self._checks.get(key, lambda: self._build_check(spec, prompt, params, yes_means))

    def _build_check(
        self, spec: Spec, prompt: str | None, params: GenParams, yes_means: YesMeans
    ) -> Check | None:
        if spec.kind == "model":
            if str(spec) != str(self.config.check) or self._default_checker is None:
                raise RequestError(
                    f"'selfcorrect.check': this server's checker model is {self.config.check}; "
                    "another model cannot be loaded per request",
                    param="selfcorrect.check",
                )
            base = self._default_checker
            return replace(base, prompt=prompt or base.prompt, params=params)
        if spec.kind == "oracle":
            raise RequestError(
                "'selfcorrect.check': oracle checks need ground truth, which a server has not",
                param="selfcorrect.check",
            )
        settings = CheckSettings(
            prompt=prompt, verdict_prompt=prompt, params=params, yes_means=yes_means
        )
        return make_check(spec, settings)

    def plan(self, req: ChatRequest) -> tuple[Check | None, CaCConfig, str, FinalPolicy]:
        cfg, o = self.config, req.overrides
        spec = parse("check", o.check) if o.check is not None else cfg.check
        assert isinstance(spec, Spec)
        rounds = cfg.rounds if o.rounds is None else o.rounds
        final = o.final or cfg.final
        # one check object per setting, so requests that differ only in the seed of greedy
        # decoding share it and their checks are batched
        check_params = replace(req.params, max_new_tokens=cfg.check_max_tokens, stop=()).batch_key()
        prompt, yes_means = o.check_prompt or cfg.check_prompt, o.yes_means or cfg.yes_means
        check = self.check_for(spec, prompt, check_params, yes_means) if rounds else None
        try:
            require_verdicts(check, final)
        except ValueError as exc:
            raise RequestError(f"'selfcorrect.final': {exc}", param="selfcorrect.final") from None
        config = CaCConfig(
            rounds=rounds,
            reask_template=cfg.reask,
            answer=req.params,
            reanswer=req.params,
            final_policy=final,
        )
        return check, config, str(spec) if check is not None else "none", final


def _json_response(status: int, body: dict[str, Any]) -> Any:
    from starlette.responses import JSONResponse

    return JSONResponse(body, status_code=status)


def _error(status: int, message: str, *, kind: str, param: str | None = None) -> Any:
    return _json_response(status, error_body(message, status=status, kind=kind, param=param))


FAILURE_STATUS: dict[FailureKind, tuple[int, str]] = {
    "invalid": (400, "invalid_request_error"),  # too long for the context, refused upstream
    "unreachable": (503, "upstream_error"),
    "timeout": (504, "upstream_error"),
    "upstream": (502, "upstream_error"),
    "internal": (500, "server_error"),
    "cancelled": (499, "request_cancelled"),  # nobody reads it: the caller left
}


def failure_reply(message: str, kind: FailureKind | None) -> tuple[int, dict[str, Any]]:
    """The HTTP status and error body for a failed conversation: `kind` (None: upstream) says
    whose failure it was, so the status says who should act."""
    status, error_type = FAILURE_STATUS[kind or "upstream"]
    prefix = "upstream failure: " if error_type == "upstream_error" else ""
    return status, error_body(prefix + message, status=status, kind=error_type)


async def _read_body(request: Any, limit: int) -> bytes:
    """The body, or `RequestError` 413 past `limit` bytes. A body declared too large is still
    read (up to 4x the limit) so the client can read the 413 instead of a reset connection."""
    declared = request.headers.get("content-length")
    too_big = declared is not None and declared.isdigit() and int(declared) > limit
    chunks, size = [], 0
    if not too_big or int(declared) <= 4 * limit:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                too_big = True
                if size > 4 * limit:
                    break
            elif not too_big:
                chunks.append(chunk)
    if too_big:
        raise RequestError(f"the body exceeds {limit} bytes", status=413)
    return b"".join(chunks)


def create_app(service: CaCService, *, api_key: str | None = None) -> Any:
    """The Starlette app serving `service` (`api_key`: required bearer token, if set)."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import StreamingResponse
    from starlette.routing import Route

    cfg = service.config
    started = int(time.time())

    def authorised(request: Request) -> bool:
        if api_key is None:
            return True
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(token.encode(), api_key.encode())

    async def health(request: Request) -> Any:
        return _json_response(
            200, {"status": "ok", "model": cfg.names[0], "in_flight": service.batcher.in_flight}
        )

    async def models(request: Request) -> Any:
        if not authorised(request):
            return _error(401, "missing or wrong bearer token", kind="authentication_error")
        data = [
            {"id": name, "object": "model", "created": started, "owned_by": "selfcorrect"}
            for name in cfg.names
        ]
        return _json_response(200, {"object": "list", "data": data})

    async def chat_completions(request: Request) -> Any:
        if not authorised(request):
            return _error(401, "missing or wrong bearer token", kind="authentication_error")
        try:
            raw = await _read_body(request, cfg.max_body_bytes)
            try:
                body = json.loads(raw)
            except (ValueError, UnicodeDecodeError, RecursionError) as exc:
                raise RequestError(f"the body is not valid JSON ({exc})") from None
            req = parse_request(body, default_max_tokens=cfg.max_tokens)
            if req.model is not None and req.model not in cfg.names:
                raise RequestError(
                    f"model {req.model!r} not found; this server serves {', '.join(cfg.names)}",
                    status=404,
                    param="model",
                )
            check, config, check_name, final = service.plan(req)
        except RequestError as exc:
            kind = "not_found_error" if exc.status == 404 else "invalid_request_error"
            return _error(exc.status, str(exc), kind=kind, param=exc.param)
        request_id = f"chatcmpl-{uuid.uuid4().hex}"
        conv = Conversation.from_messages(request_id, req.messages)
        model = req.model or cfg.names[0]
        service.audit.expect(
            conv,
            model=model,
            user=req.user,
            check=check_name,
            rounds=config.rounds,
            final=final,
            messages=[{"role": m.role, "content": m.content} for m in req.messages],
        )
        run = asyncio.ensure_future(service.batcher.run(conv, check, config))

        def outcome(done: Conversation) -> tuple[int, dict[str, Any]]:
            if done.error is not None or done.final_answer() is None:
                return failure_reply(done.error or "no answer was produced", done.error_kind)
            summary = cac_summary(done, check=check_name, final_policy=final, seed=req.params.seed)
            return 200, completion_body(done, request_id=request_id, model=model, summary=summary)

        async def finish() -> tuple[int, dict[str, Any]]:
            try:
                return outcome(await run)
            except BackendError as exc:
                return failure_reply(str(exc), exc.kind)
            except RequestError as exc:
                return exc.status, error_body(
                    str(exc), status=exc.status, kind="invalid_request_error"
                )
            except Exception as exc:  # never a 200 for a failure, never a crash
                return 500, error_body(
                    f"internal error: {type(exc).__name__}: {exc}", status=500, kind="server_error"
                )

        status, body = await finish()
        if not req.stream or status != 200:
            return _json_response(status, body)
        return StreamingResponse(
            iter(list(stream_chunks(body, include_usage=req.include_usage))),
            media_type="text/event-stream",
        )

    async def on_shutdown() -> None:
        await asyncio.to_thread(service.batcher.stop)

    async def on_startup() -> None:
        service.batcher.start()

    from contextlib import asynccontextmanager

    @asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[None]:
        await on_startup()
        try:
            yield
        finally:
            await on_shutdown()

    routes = [
        Route("/health", health, methods=["GET"]),
        Route("/v1/models", models, methods=["GET"]),
        Route("/v1/chat/completions", chat_completions, methods=["POST"]),
    ]
    app = Starlette(routes=routes, lifespan=lifespan)
    from starlette.exceptions import HTTPException

    async def http_error(request: Request, exc: Exception) -> Any:
        status = getattr(exc, "status_code", 500)
        detail = getattr(exc, "detail", "error")
        return _error(status, str(detail), kind="invalid_request_error")

    app.add_exception_handler(HTTPException, http_error)
    return app
