"""ASGI middleware: request body size limit (413), request metrics, where a run's LLM key may be sent (422)."""

from __future__ import annotations

import re
import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cogni_server import metrics
from cogni_server.serde import dumps


class BodyLimit:
    """Refuse bodies over ``max_bytes`` with 413, by Content-Length or while reading (chunked bodies
    have no Content-Length: the count while reading decides, whatever the app does with the error)."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    too_big = int(value) > self.max_bytes
                except ValueError:
                    too_big = False
                if too_big:
                    await self._reject(send)
                    return
        received = 0
        exceeded = False
        started = False

        async def limited() -> Message:
            nonlocal received, exceeded
            if exceeded:
                raise _TooLarge
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    exceeded = True
                    raise _TooLarge
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if exceeded:
                # The app caught _TooLarge and answers on its own (FastAPI turns any failure while
                # reading a body into a 400): a chunked body over the limit is a 413 all the same.
                if message["type"] == "http.response.start" and not started:
                    started = True
                    await self._reject(send)
                return
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited, guarded_send)
        except _TooLarge:
            if not started:
                await self._reject(send)

    async def _reject(self, send: Send) -> None:
        body = dumps({"detail": f"request body exceeds the limit of {self.max_bytes} bytes"})
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": body})


class _TooLarge(Exception):
    pass


class Metrics:
    """Count requests by method, route template and status; time to the response head."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status: dict[str, Any] = {}

        async def wrapped(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
                route = scope.get("route")
                path = getattr(route, "path", "unmatched")
                metrics.HTTP_SECONDS.labels(scope["method"], path).observe(time.perf_counter() - start)
                metrics.HTTP_REQUESTS.labels(scope["method"], path, str(message["status"])).inc()
            await send(message)

        await self.app(scope, receive, wrapped)


LLM_KEY_HEADER_RAW = b"x-cogni-llm-key"
LLM_KEY_ROUTES: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("POST", re.compile(r"^/(?:threads/[^/]+/runs|runs)(?:/stream|/wait|/batch)?/?$")),  # api/runs.py
    ("POST", re.compile(r"^/(?:threads/[^/]+/)?runs/crons/?$")),  # api/crons.py: kept sealed with the cron
    ("PATCH", re.compile(r"^/runs/crons/[^/]+/?$")),  # replaces a cron's key
    ("POST", re.compile(r"^/threads/[^/]+/commands/?$")),  # api/thread_stream.py (and the WebSocket's upgrade)
    ("POST", re.compile(r"^/a2a/[^/]+/?$")),  # api/a2a.py
    ("POST", re.compile(r"^/mcp/?$")),  # api/mcp.py
)
"""Where a run's per-account LLM key is accepted: the requests that may create runs (docs/compliance.md)."""


class LlmKeyOnlyOnRunCreation:
    """A request carrying ``X-Cogni-LLM-Key`` anywhere but a request that may create runs is refused (422), not
    served with the key silently ignored. WebSocket upgrades pass: the thread socket checks the key itself."""

    REFUSAL = dumps(
        {
            "detail": "X-Cogni-LLM-Key is accepted only where runs are created: POST /threads/{id}/runs, /runs and"
            " their /stream, /wait, /batch forms; POST /runs/crons, /threads/{id}/runs/crons, PATCH /runs/crons/{id};"
            " POST /threads/{id}/commands; POST /a2a/{assistant_id}; POST /mcp"
        }
    )

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    def _refused(self, scope: Scope) -> bool:
        if scope["type"] != "http" or not any(name == LLM_KEY_HEADER_RAW for name, _ in scope.get("headers", ())):
            return False
        method, path = scope["method"], scope["path"]
        return not any(method == m and pattern.match(path) for m, pattern in LLM_KEY_ROUTES)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not self._refused(scope):
            await self.app(scope, receive, send)
            return
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(self.REFUSAL)).encode())]
        await send({"type": "http.response.start", "status": 422, "headers": headers})
        await send({"type": "http.response.body", "body": self.REFUSAL})
