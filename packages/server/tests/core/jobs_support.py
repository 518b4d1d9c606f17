"""Shared by the cron, webhook and thread-TTL tests: a server on a LangGraph project whose
langgraph.json has ``webhooks`` and ``checkpointer.ttl`` blocks, with fast background loops, and a
webhook receiver on loopback that records every request."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from testsupport import ManagedProcess

from .conftest import PROJECT, server_env

SECRET = "test-webhook-secret"
STATIC_TOKEN = "static-token-123"
DEFAULT_TTL_MINUTES = 600

FAST = {
    "COGNI_CRON_ALLOW_SECONDS": "true",
    "COGNI_CRON_POLL_SECONDS": "0.1",
    "COGNI_WEBHOOK_ALLOWED_DOMAINS": "127.0.0.1",
    "COGNI_WEBHOOK_SECRET": SECRET,
    "COGNI_WEBHOOK_POLL_SECONDS": "0.1",
    "COGNI_WEBHOOK_BACKOFF_SECONDS": "0.2",
    "COGNI_THREAD_TTL_SWEEP_SECONDS": "1",
    "LG_WEBHOOK_TOKEN": STATIC_TOKEN,
}


def write_project(directory: Path) -> Path:
    """The fixture project's graphs with webhook headers and a default thread TTL."""
    graphs = json.loads(PROJECT.read_text())["graphs"]
    source = PROJECT.parent
    raw = {
        "graphs": {gid: str(source / spec.removeprefix("./")) for gid, spec in graphs.items()},
        "env": {"SERVER_FIXTURE_GREETING": "hello"},
        "webhooks": {
            "env_prefix": "LG_WEBHOOK_",
            "headers": {"X-Static-Header": "static", "Authorization": "Bearer ${{ env.LG_WEBHOOK_TOKEN }}"},
        },
        "checkpointer": {"ttl": {"strategy": "delete", "default_ttl": DEFAULT_TTL_MINUTES}},
    }
    path = directory / "langgraph.json"
    path.write_text(json.dumps(raw))
    return path


def start_jobs_server(
    database_url: str, port: int, project: Path, *, name: str = "cogni-jobs", **extra: str
) -> ManagedProcess:
    env = server_env(database_url, **{**FAST, **extra})
    proc = ManagedProcess.python_module(
        "cogni_server", "serve", "--config", str(project), "--port", str(port), env=env, name=name
    )
    try:
        proc.wait_http(f"http://127.0.0.1:{port}/ok", timeout=60)
    except BaseException:
        proc.stop()
        raise
    return proc


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Receiver:
    """Answers 200, or for ``/status/<code>/<n>`` answers ``code`` to the first ``n`` requests."""

    port: int
    requests: list[Received] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def on(self, path: str) -> list[Received]:
        with self.lock:
            return [r for r in self.requests if r.path == path]

    def wait(self, path: str, n: int = 1, limit: float = 20.0) -> list[Received]:
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            got = self.on(path)
            if len(got) >= n:
                return got
            time.sleep(0.05)
        raise AssertionError(f"{path}: {len(self.on(path))} request(s) after {limit}s, wanted {n}")


@contextmanager
def receiver(port: int = 0) -> Iterator[Receiver]:
    state = Receiver(port)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            n = int(self.headers.get("content-length") or 0)
            body = self.rfile.read(n)
            status = 200
            parts = self.path.strip("/").split("/")
            with state.lock:
                state.requests.append(Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body))
                seen = state.counts[self.path] = state.counts.get(self.path, 0) + 1
            if len(parts) >= 3 and parts[0] == "status" and seen <= int(parts[2]):
                status = int(parts[1])
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.end_headers()
            self.wfile.write(b'{"ok":true}')

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    state.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


async def eventually(check: Callable[[], Awaitable[bool]], limit: float, step: float = 0.1) -> bool:
    """Poll ``check`` until it holds or ``limit`` seconds passed; whether it held."""
    deadline = time.monotonic() + limit
    while True:
        if await check():
            return True
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(step)
