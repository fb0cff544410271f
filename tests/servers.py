"""A real OpenAI-compatible server (llama.cpp's) with the embedded model, on 127.0.0.1."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager

RUNNING: dict[str, subprocess.Popen[bytes]] = {}  # base URL -> server process, to stop it mid-test


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def llama_server(port: int | None = None, startup_timeout: float = 120.0) -> Iterator[str]:
    """Start `python -m llama_cpp.server` on the embedded GGUF; yield its base URL."""
    from selfcorrect.backends.llamacpp import embedded_model_path

    port = port or free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "llama_cpp.server",
            "--model",
            str(embedded_model_path()),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--n_ctx",
            "4096",
            "--model_alias",
            "smollm2",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + startup_timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"llama_cpp.server exited with {proc.returncode}")
            try:
                urllib.request.urlopen(base + "/models", timeout=2).read()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("llama_cpp.server did not start in time") from None
                time.sleep(0.3)
        RUNNING[base] = proc
        yield base
    finally:
        RUNNING.pop(base, None)
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


@contextmanager
def fault_proxy(
    upstream: str, faults: list[tuple[int, dict[str, str], bytes]]
) -> Iterator[tuple[str, list[str]]]:
    """A proxy on 127.0.0.1 that answers the first requests with the given faults
    (status, headers, body), then forwards to `upstream`. Yields (base URL, request log)."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    log: list[str] = []
    pending = list(faults)
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            self._handle(b"")

        def do_POST(self) -> None:
            self._handle(self.rfile.read(int(self.headers.get("content-length", 0))))

        def _handle(self, body: bytes) -> None:
            with lock:
                fault = pending.pop(0) if pending else None
                log.append(f"{self.command} {self.path} -> {fault[0] if fault else 'forward'}")
            if fault is not None:
                status, headers, payload = fault
                if "x-delay" in headers:
                    time.sleep(float(headers["x-delay"]))
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("content-length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
                return
            path = self.path[len("/v1") :] if self.path.startswith("/v1") else self.path
            req = urllib.request.Request(
                upstream + path,
                data=body or None,
                method=self.command,
                headers={"content-type": "application/json"},
            )
            with urllib.request.urlopen(req, timeout=60) as resp:
                data = resp.read()
                self.send_response(resp.status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1", log
    finally:
        server.shutdown()
        server.server_close()
