"""Servers on 127.0.0.1 for the tests: a real OpenAI-compatible server (llama.cpp's) with the
embedded model, a fault-injecting proxy in front of it, and hostile servers (a black hole that
accepts and never answers, one that trickles bytes, one that echoes the request's headers in a
401 body)."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager

RUNNING: dict[str, subprocess.Popen[bytes]] = {}  # base URL -> server process, to stop it mid-test


def most_at_once(seen: list[dict[str, object]]) -> int:
    """The most requests a `fault_proxy` was answering at the same time (from `seen`)."""
    events = sorted(
        [(float(e["time"]), 1) for e in seen] + [(float(e["end"]), -1) for e in seen],  # type: ignore[arg-type]
        key=lambda ev: (ev[0], ev[1]),  # an end before a start at the same instant
    )
    most = now = 0
    for _, step in events:
        now += step
        most = max(most, now)
    return most


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def llama_server(
    port: int | None = None, startup_timeout: float = 120.0, extra_args: tuple[str, ...] = ()
) -> Iterator[str]:
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
            *extra_args,
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
    upstream: str,
    faults: list[tuple[int, dict[str, str], bytes]],
    seen: list[dict[str, object]] | None = None,
) -> Iterator[tuple[str, list[str]]]:
    """A proxy on 127.0.0.1 that answers the first requests with the given faults
    (status, headers, body), then forwards to `upstream`. Yields (base URL, request log);
    `seen`, if given, receives each request's method, path, headers, JSON body, arrival time
    (time.monotonic()) and "end" (when its reply was ready, just before it is sent)."""
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
            entry: dict[str, object] = {}
            try:
                self._answer(body, entry)
            finally:
                entry.setdefault("end", time.monotonic())

        def _answer(self, body: bytes, entry: dict[str, object]) -> None:
            if seen is not None:
                import json

                try:
                    parsed = json.loads(body) if body else None
                except ValueError:
                    parsed = None
                entry.update(
                    method=self.command,
                    path=self.path,
                    headers=dict(self.headers.items()),
                    json=parsed,
                    time=time.monotonic(),
                )
                seen.append(entry)
            with lock:
                fault = pending.pop(0) if pending else None
                log.append(f"{self.command} {self.path} -> {fault[0] if fault else 'forward'}")
            if fault is not None:
                status, headers, payload = fault
                if "x-delay" in headers:
                    time.sleep(float(headers["x-delay"]))
                entry["end"] = time.monotonic()  # before the reply: the client may go on
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
                entry["end"] = time.monotonic()  # before the reply: the client may go on
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


@contextmanager
def _raw_server(handle: object) -> Iterator[str]:
    """A threaded TCP server on 127.0.0.1 calling `handle(conn)` per connection."""
    import threading

    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    sock.settimeout(0.2)
    stop = threading.Event()
    conns: list[socket.socket] = []

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = sock.accept()
            except OSError:
                continue
            conns.append(conn)
            threading.Thread(target=handle, args=(conn, stop), daemon=True).start()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/v1"
    finally:
        stop.set()
        thread.join(timeout=5)
        for conn in conns:
            conn.close()
        sock.close()


def _read_request(conn: socket.socket) -> bytes:
    """Read one HTTP request (headers and a content-length body)."""
    conn.settimeout(5)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            need = int(line.split(b":", 1)[1])
            while len(body) < need:
                chunk = conn.recv(65536)
                if not chunk:
                    break
                body += chunk
    return head


@contextmanager
def black_hole() -> Iterator[str]:
    """Accepts connections, reads nothing, never answers."""

    def handle(conn: socket.socket, stop: object) -> None:
        stop.wait()  # type: ignore[attr-defined]

    with _raw_server(handle) as url:
        yield url


@contextmanager
def trickle_server(interval: float = 0.3) -> Iterator[str]:
    """Answers 200 with a long body, one byte every `interval` seconds (never finishes)."""

    def handle(conn: socket.socket, stop: object) -> None:
        try:
            _read_request(conn)
            conn.sendall(
                b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                b"content-length: 100000\r\n\r\n"
            )
            while not stop.wait(interval):  # type: ignore[attr-defined]
                conn.sendall(b" ")
        except OSError:
            pass

    with _raw_server(handle) as url:
        yield url


@contextmanager
def echo_server(status: int = 401) -> Iterator[str]:
    """Answers every request with `status` and a JSON body quoting the request's headers,
    Authorization included (as some misconfigured servers and proxies do)."""
    import json

    def handle(conn: socket.socket, stop: object) -> None:
        try:
            head = _read_request(conn).decode("latin-1")
            headers = dict(line.split(": ", 1) for line in head.split("\r\n")[1:] if ": " in line)
            body = json.dumps({"error": {"message": f"unauthorised request: {headers}"}})
            raw = body.encode()
            conn.sendall(
                f"HTTP/1.1 {status} Unauthorized\r\ncontent-type: application/json\r\n"
                f"content-length: {len(raw)}\r\nconnection: close\r\n\r\n".encode()
                + raw
            )
        except OSError:
            pass
        finally:
            conn.close()

    with _raw_server(handle) as url:
        yield url
