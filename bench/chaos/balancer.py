"""The load balancer between the app and the two server instances, which can also tamper with usage events.

The app knows one Agent Server URL; in the campaign that URL is this balancer, as it would be a load
balancer in production. Requests go round-robin to the instances; an instance that refuses the
connection (killed, restarting) is skipped, as a health-checked balancer would. A stream cut by a
dying instance is cut for the app too (the connection is aborted, not ended cleanly).

Fault modes for the usage events (`event: custom` with `"type": "usage"`, one per LLM call) on the
SSE streams it relays: `drop` loses each with probability 1/2, `duplicate` delivers each twice.
Everything else passes byte for byte. It runs in a thread of the campaign process (uvicorn).
"""

from __future__ import annotations

import asyncio
import random
import re
import threading
import time
from typing import Any

import httpx
import uvicorn

HOP_BY_HOP = {b"host", b"connection", b"keep-alive", b"transfer-encoding", b"te", b"upgrade", b"content-length"}
EVENT_END = re.compile(rb"\r\n\r\n|\n\n|\r\r")
MODES = ("pass", "drop", "duplicate")


def is_usage_event(block: bytes) -> bool:
    """Whether an SSE event block is a graph's usage report (custom stream mode)."""
    head = block.lstrip()
    return head.startswith(b"event: custom") and (b'"type":"usage"' in block or b'"type": "usage"' in block)


class Balancer:
    """Round-robin reverse proxy over `backends` with a switchable usage-event fault mode."""

    def __init__(self, backends: list[str], port: int) -> None:
        self.backends = list(backends)
        self.port = port
        self.mode = "pass"
        self.dropped = 0
        self.duplicated = 0
        self.cut_streams = 0
        self._next = 0
        self._rng = random.Random(12)
        self._client: httpx.AsyncClient | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def set_mode(self, mode: str) -> None:
        if mode not in MODES:
            raise ValueError(f"unknown balancer mode {mode!r} ({', '.join(MODES)})")
        self.mode = mode

    # -- lifecycle (a thread with its own event loop) --------------------------------------------
    def start(self) -> Balancer:
        # "critical": a cut stream (below) is expected here, not worth uvicorn's error line each time.
        config = uvicorn.Config(self, host="127.0.0.1", port=self.port, lifespan="off", log_level="critical")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="chaos-balancer", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the balancer did not start")
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(timeout=10)

    # -- ASGI ------------------------------------------------------------------------------------
    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=httpx.Timeout(10.0, read=None))
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        target = scope["raw_path"].decode() + (f"?{scope['query_string'].decode()}" if scope["query_string"] else "")
        headers = [(k, v) for k, v in scope["headers"] if k.lower() not in HOP_BY_HOP]
        response = await self._send_to_some_backend(scope["method"], target, headers, body)
        if response is None:
            await _answer(send, 502, b"no backend reachable")
            return
        try:
            out_headers = [(k, v) for k, v in response.headers.raw if k.lower() not in HOP_BY_HOP]
            await send({"type": "http.response.start", "status": response.status_code, "headers": out_headers})
            sse = response.headers.get("content-type", "").startswith("text/event-stream")
            if sse:
                await self._relay_sse(response, send)
            else:
                async for chunk in response.aiter_raw():
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        except httpx.HTTPError:
            # The instance died mid-response: return without ending the body, so the server aborts the
            # app's connection as a load balancer would (no clean end the app could take for a result).
            self.cut_streams += 1
        finally:
            await response.aclose()

    async def _send_to_some_backend(
        self, method: str, target: str, headers: list[tuple[bytes, bytes]], body: bytes
    ) -> httpx.Response | None:
        assert self._client is not None
        for _ in range(2):  # two rounds over the instances: one may be coming back up
            for _ in range(len(self.backends)):
                backend = self.backends[self._next % len(self.backends)]
                self._next += 1
                request = self._client.build_request(method, backend + target, headers=headers, content=body)
                try:
                    return await self._client.send(request, stream=True)
                except httpx.ConnectError:
                    continue
            await asyncio.sleep(0.5)
        return None

    async def _relay_sse(self, response: httpx.Response, send: Any) -> None:
        buffer = b""
        async for chunk in response.aiter_raw():
            if self.mode == "pass" and not buffer:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
                continue
            buffer += chunk
            out = b""
            while (match := EVENT_END.search(buffer)) is not None:
                block, buffer = buffer[: match.end()], buffer[match.end() :]
                out += self._tamper(block)
            if out:
                await send({"type": "http.response.body", "body": out, "more_body": True})
        if buffer:
            await send({"type": "http.response.body", "body": buffer, "more_body": True})

    def _tamper(self, block: bytes) -> bytes:
        if self.mode == "pass" or not is_usage_event(block):
            return block
        if self.mode == "drop" and self._rng.random() < 0.5:
            self.dropped += 1
            return b""
        if self.mode == "duplicate":
            self.duplicated += 1
            return block + block
        return block


async def _answer(send: Any, status: int, body: bytes) -> None:
    await send({"type": "http.response.start", "status": status, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": body, "more_body": False})
