"""Raw protocol helpers for the thread-streaming tests: an SSE reader that keeps every frame, and
commands over HTTP (what the official clients send, without their client-side logic)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import Callable
from typing import Any

import httpx

from packages.server.tests.core.conftest import KEY_A, PROJECT

THREAD_PROJECT = PROJECT.parent / "thread_streaming.json"
ALL = ["values", "updates", "messages", "tools", "lifecycle", "input", "checkpoints", "tasks", "custom"]
Event = dict[str, Any]


def http(url: str, key: str = KEY_A) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=url, headers={"x-api-key": key}, timeout=30)


def new_thread() -> str:
    return str(uuid.uuid4())


async def command(c: httpx.AsyncClient, thread_id: str, method: str, params: dict[str, Any], id_: int = 1) -> Any:
    r = await c.post(f"/threads/{thread_id}/commands", json={"id": id_, "method": method, "params": params})
    assert r.status_code == 200, r.text
    return r.json()


async def start(c: httpx.AsyncClient, thread_id: str, assistant: str, graph_input: Any = None, **extra: Any) -> str:
    params = {"assistant_id": assistant, **extra}
    if graph_input is not None:
        params["input"] = graph_input
    reply = await command(c, thread_id, "run.start", params)
    assert reply["type"] == "success", reply
    return str(reply["result"]["run_id"])


def root_terminal(event: Event) -> bool:
    return (
        event["method"] == "lifecycle"
        and not event["params"]["namespace"]
        and event["params"]["data"]["event"] in ("completed", "failed", "interrupted")
    )


class Stream:
    """One SSE event stream, read in the background; ``frames`` keeps the raw ``data:`` payloads."""

    def __init__(self, c: httpx.AsyncClient, thread_id: str, body: dict[str, Any]) -> None:
        self.events: list[Event] = []
        self.frames: list[bytes] = []
        self.status: int | None = None
        self.headers: httpx.Headers | None = None
        self.ready = asyncio.Event()
        self._changed = asyncio.Event()
        self._task = asyncio.ensure_future(self._run(c, thread_id, body))

    async def _run(self, c: httpx.AsyncClient, thread_id: str, body: dict[str, Any]) -> None:
        try:
            async with c.stream("POST", f"/threads/{thread_id}/stream/events", json=body, timeout=None) as r:
                self.status, self.headers = r.status_code, r.headers
                self.ready.set()
                async for line in r.aiter_lines():
                    if line.startswith("data: "):
                        self.frames.append(line[6:].encode())
                        self.events.append(json.loads(line[6:]))
                        self._changed.set()
        finally:
            self.ready.set()
            self._changed.set()

    async def wait_for(self, predicate: Callable[[list[Event]], bool], limit: float = 20.0) -> list[Event]:
        deadline = asyncio.get_running_loop().time() + limit
        while not predicate(self.events):
            if self._task.done():
                raise AssertionError(f"stream ended early: {self.summary()}")
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                raise AssertionError(f"timed out; saw {self.summary()}")
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), remaining)
        return self.events

    async def terminals(self, n: int, limit: float = 20.0) -> list[Event]:
        await self.wait_for(lambda evs: sum(root_terminal(e) for e in evs) >= n, limit)
        return self.events

    async def close(self) -> None:
        self._task.cancel()
        with contextlib.suppress(BaseException):
            await self._task

    def summary(self) -> list[str]:
        out = []
        for e in self.events:
            data = e["params"]["data"]
            tag = data.get("event") if isinstance(data, dict) and "event" in data else ""
            out.append(f"{e['seq']}:{e['method']}{'/' + str(tag) if tag else ''}{e['params']['namespace'] or ''}")
        return out


def lifecycle(events: list[Event], *, root: bool = True) -> list[dict[str, Any]]:
    return [
        e["params"]["data"] for e in events if e["method"] == "lifecycle" and (not e["params"]["namespace"]) == root
    ]


async def open_stream(c: httpx.AsyncClient, thread_id: str, **body: Any) -> Stream:
    stream = Stream(c, thread_id, {"channels": ALL, **body})
    await asyncio.wait_for(stream.ready.wait(), 10)
    return stream


class CuttingProxy:
    """A loopback TCP proxy whose ``cut()`` aborts every open connection (a network drop)."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.port = 0
        self._server: asyncio.Server | None = None
        self._live: set[asyncio.StreamWriter] = set()
        self.accepted = 0
        self.cuts = 0

    async def __aenter__(self) -> CuttingProxy:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.cut()
        if self._server is not None:
            self._server.close()

    def cut(self) -> None:
        self.cuts += len(self._live) // 2
        for writer in list(self._live):
            writer.transport.abort()
        self._live.clear()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        self._live.update((writer, up_writer))

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(Exception):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            with contextlib.suppress(Exception):
                dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        self._live.discard(writer)
        self._live.discard(up_writer)
