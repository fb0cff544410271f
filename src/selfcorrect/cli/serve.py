"""``selfcorrect serve``: Check as Context as an OpenAI-compatible server in front of any model."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import typer

from selfcorrect.backends.llamacpp import DEFAULT_MODEL
from selfcorrect.cli.common import parse_options


def serve(
    model: str = typer.Option(DEFAULT_MODEL, "--model", "-m", help="Upstream model spec."),
    base_url: str = typer.Option(
        None, "--base-url", help="Upstream URL for openai/<model> (vLLM, llama.cpp server, ...)."
    ),
    option: list[str] = typer.Option(
        None, "--option", help="Backend option key=value, repeatable."
    ),
    rounds: int = typer.Option(1, "--rounds", "-r", min=0, max=20, help="Default CaC rounds."),
    check: str = typer.Option(
        "self", "--check", help="Default check: self, verdict, model:SPEC or none."
    ),
    check_prompt: str = typer.Option(None, "--check-prompt", help="Default check prompt."),
    yes_means: str = typer.Option(
        "fail",
        "--yes-means",
        help="What 'yes' to a verdict check prompt means: fail (as for the default 'Is your "
        "previous answer wrong?') or pass (for 'Is your answer correct?').",
    ),
    final: str = typer.Option("last", "--final", help="last or first_accepted."),
    max_tokens: int = typer.Option(
        256, "--max-tokens", min=1, help="Default max_tokens per answer."
    ),
    check_max_tokens: int = typer.Option(256, "--check-max-tokens", min=1, help="Per check."),
    max_in_flight: int = typer.Option(
        64, "--max-in-flight", min=1, help="Conversations advanced together (more wait)."
    ),
    batch_window_ms: float = typer.Option(
        0.0,
        "--batch-window-ms",
        min=0,
        max=10_000,
        help="When idle, wait this long for more requests before the first step, so a burst "
        "shares its first backend call (helps batched and HTTP upstreams; adds up to this much "
        "latency to a lone request).",
    ),
    served_model_name: list[str] = typer.Option(
        None, "--served-model-name", help="Name(s) clients use (default: the model spec)."
    ),
    host: str = typer.Option("127.0.0.1", "--host", help="Bind address (loopback by default)."),
    port: int = typer.Option(8100, "--port", min=1, max=65535),
    api_key_env: str = typer.Option(
        None, "--api-key-env", help="Require this environment variable's value as bearer token."
    ),
    out: Path = typer.Option(
        None, "--out", "-o", help="Audit trail: every request to DIR/records.jsonl."
    ),
) -> None:
    """Serve POST /v1/chat/completions (CaC on every request), GET /v1/models and GET /health."""
    import uvicorn

    from selfcorrect.backends.base import GenParams, describe_backend, get_backend
    from selfcorrect.cac.checks import CheckSettings, ModelCheck, make_check
    from selfcorrect.fingerprint import backend_inputs
    from selfcorrect.runs import RunDir
    from selfcorrect.serve.app import CaCService, ServeConfig, create_app
    from selfcorrect.serve.audit import AuditLog
    from selfcorrect.serve.batcher import Batcher
    from selfcorrect.specs import plain, served_options

    api_key = None
    if api_key_env:
        api_key = os.environ.get(api_key_env)
        if not api_key:
            raise ValueError(f"--api-key-env {api_key_env}: the variable is not set or empty")
    if final not in ("last", "first_accepted"):
        raise ValueError(f"--final must be last or first_accepted, got {final!r}")
    options = parse_options(option, url_flag=True)
    config = ServeConfig(
        model=model,
        rounds=rounds,
        check=check,
        check_prompt=check_prompt,
        yes_means=yes_means,  # type: ignore[arg-type]
        final=final,  # type: ignore[arg-type]
        max_tokens=max_tokens,
        check_max_tokens=check_max_tokens,
        max_in_flight=max_in_flight,
        batch_window_ms=batch_window_ms,
        served_names=tuple(served_model_name or ()),
        base_url=base_url,
        backend_options=options,
    )
    checker: ModelCheck | None = None
    if config.check.kind == "model":  # type: ignore[union-attr]
        settings = CheckSettings(
            prompt=check_prompt,
            params=GenParams(max_new_tokens=check_max_tokens),
            checker_options=served_options(config.check, base_url),  # type: ignore[arg-type]
        )
        built = make_check(config.check, settings)
        assert isinstance(built, ModelCheck)
        checker = built
    backend = get_backend(model, base_url=base_url, **options)
    run = None
    if out is not None:
        run = RunDir.open(
            out,
            study="serve",
            config=plain(config),
            model=model,
            inputs=backend_inputs(model, base_url, check=config.check),
        )
        run.note(backend=describe_backend(backend))
    audit = AuditLog(run)
    batcher = Batcher(
        backend,
        max_in_flight=max_in_flight,
        on_finish=audit.finished,
        window=batch_window_ms / 1000,
    )
    app = create_app(CaCService(config, batcher, checker=checker, audit=audit), api_key=api_key)
    typer.echo(
        f"serving Check as Context on http://{host}:{port}/v1 (model {config.names[0]}, "
        f"{rounds} round(s), check {config.check}); Ctrl-C or SIGTERM stops after in-flight requests",
        err=True,
    )
    # uvicorn finishes in-flight requests on SIGTERM, then re-raises the signal: exit 143
    # through Python so the audit log is closed properly.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        uvicorn.run(app, host=host, port=port, log_level="warning", timeout_graceful_shutdown=None)
    finally:
        if run is not None:
            run.finish()
