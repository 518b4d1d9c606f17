"""Capacity bench: opening N idle streams (SSE or WebSocket) and keeping them read (see bench/capacity.py)."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidStatus

from bench.measure import client_for

OPEN_CONCURRENCY = 64  # streams being opened at once
OPEN_TIMEOUT_S = 30.0


@dataclass
class OpenStreams:
    """The streams that opened, their reader tasks, and why the others did not."""

    transport: str
    readers: list[asyncio.Task[None]] = field(default_factory=list)
    closers: list[Any] = field(default_factory=list)
    failures: int = 0
    errors: list[str] = field(default_factory=list)
    bytes_received: list[int] = field(default_factory=list)

    def fail(self, exc: BaseException) -> None:
        self.failures += 1
        if len(self.errors) < 5:
            self.errors.append(f"{type(exc).__name__}: {exc}")

    def alive(self) -> int:
        return sum(1 for task in self.readers if not task.done())

    async def close(self) -> None:
        for task in self.readers:
            task.cancel()
        await asyncio.gather(*self.readers, return_exceptions=True)
        for closer in self.closers:
            with contextlib.suppress(Exception):
                await closer()


async def create_threads(url: str, count: int) -> list[str]:
    """`count` new threads, created OPEN_CONCURRENCY at a time."""
    ids: list[str] = []
    async with client_for(url) as client:
        for offset in range(0, count, OPEN_CONCURRENCY):
            batch = min(OPEN_CONCURRENCY, count - offset)
            threads = await asyncio.gather(*(client.threads.create() for _ in range(batch)))
            ids += [t["thread_id"] for t in threads]
    return ids


async def _drain(reader: asyncio.StreamReader, counter: list[int], index: int) -> None:
    """Read (and discard) whatever an idle stream sends, heartbeats mostly, until it ends."""
    while chunk := await reader.read(65536):
        counter[index] += len(chunk)


async def open_sse(host: str, port: int, path: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A raw HTTP/1.1 GET of an SSE route; returns once the 200 response headers are in."""
    reader, writer = await asyncio.open_connection(host, port)
    try:
        head = [f"GET {path} HTTP/1.1", f"Host: {host}:{port}", "Accept: text/event-stream", "Cache-Control: no-store"]
        writer.write(("\r\n".join(head) + "\r\n\r\n").encode())
        await writer.drain()
        status_line = (await reader.readline()).decode("latin-1").strip()
        parts = status_line.split(" ", 2)
        if len(parts) < 2 or parts[1] != "200":
            raise RuntimeError(f"GET {path} answered {status_line!r}")
        while (await reader.readline()) not in (b"\r\n", b"\n", b""):
            pass
    except BaseException:
        writer.close()
        raise
    return reader, writer


async def open_sse_streams(url: str, thread_ids: list[str]) -> OpenStreams:
    """One `GET /threads/{id}/stream` per thread, OPEN_CONCURRENCY opening at a time."""
    split = urlsplit(url)
    host, port = split.hostname or "127.0.0.1", split.port or 80
    streams = OpenStreams("sse", bytes_received=[0] * len(thread_ids))
    semaphore = asyncio.Semaphore(OPEN_CONCURRENCY)

    async def one(index: int, thread_id: str) -> None:
        async with semaphore:
            try:
                async with asyncio.timeout(OPEN_TIMEOUT_S):
                    reader, writer = await open_sse(host, port, f"/threads/{thread_id}/stream")
            except (OSError, RuntimeError, TimeoutError) as exc:
                streams.fail(exc)
                return
        streams.readers.append(asyncio.create_task(_drain(reader, streams.bytes_received, index)))
        streams.closers.append(_closer(writer))

    await asyncio.gather(*(one(i, t) for i, t in enumerate(thread_ids)))
    return streams


def _closer(writer: asyncio.StreamWriter) -> Any:
    async def close() -> None:
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()

    return close


def ws_url(url: str, thread_id: str) -> str:
    split = urlsplit(url)
    scheme = "wss" if split.scheme == "https" else "ws"
    return f"{scheme}://{split.netloc}/threads/{thread_id}/stream/events"


SUBSCRIBE = '{"id": 1, "method": "subscription.subscribe", "params": {"channels": ["lifecycle"]}}'


async def open_websocket(url: str, thread_id: str) -> ClientConnection:
    """A WebSocket on the thread's event stream, subscribed to `lifecycle` (as the SDK subscribes)."""
    ws = await connect(ws_url(url, thread_id), ping_interval=20.0, ping_timeout=20.0, open_timeout=OPEN_TIMEOUT_S)
    try:
        await ws.send(SUBSCRIBE)
        await asyncio.wait_for(ws.recv(), OPEN_TIMEOUT_S)  # the command's reply
    except BaseException:
        await ws.close()
        raise
    return ws


async def serves_websocket(url: str, thread_id: str) -> tuple[bool, str]:
    """Whether the server accepts the WebSocket upgrade on `/threads/{id}/stream/events`."""
    try:
        ws = await open_websocket(url, thread_id)
    except InvalidStatus as exc:
        return False, f"WebSocket upgrade on /threads/{{id}}/stream/events answered {exc.response.status_code}"
    except (OSError, TimeoutError) as exc:
        return False, f"WebSocket upgrade failed: {type(exc).__name__}: {exc}"
    await ws.close()
    return True, "101"


async def _drain_ws(ws: ClientConnection, counter: list[int], index: int) -> None:
    with contextlib.suppress(Exception):
        async for message in ws:
            counter[index] += len(message)


async def open_websocket_streams(url: str, thread_ids: list[str]) -> OpenStreams:
    streams = OpenStreams("websocket", bytes_received=[0] * len(thread_ids))
    semaphore = asyncio.Semaphore(OPEN_CONCURRENCY)

    async def one(index: int, thread_id: str) -> None:
        async with semaphore:
            try:
                ws = await open_websocket(url, thread_id)
            except (OSError, TimeoutError, InvalidStatus, RuntimeError) as exc:
                streams.fail(exc)
                return
        streams.readers.append(asyncio.create_task(_drain_ws(ws, streams.bytes_received, index)))
        streams.closers.append(ws.close)

    await asyncio.gather(*(one(i, t) for i, t in enumerate(thread_ids)))
    return streams
