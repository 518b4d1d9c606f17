"""SSE and keep-alive JSON responses fed by the broker.

A pump task copies broker events into a queue so the response can emit ``: heartbeat`` comments on
idle connections without cancelling the subscription mid-read. Events already queued when the
response writes are written together, as one chunk (a fast run's tokens cost one ASGI send per
batch, not per event; the bytes on the wire are the same).

The queue is bounded (``SSE_QUEUE_EVENTS``): when a client reads slower than the run publishes, the
pump stops reading the broker until the client catches up (backpressure), so a slow client costs a
fixed amount of memory; the events wait in the broker's stream, which retains them anyway.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

from fastapi.responses import StreamingResponse

from cogni_server.serde import dumps
from cogni_server.streaming import HEARTBEAT, BrokerUnavailable, StreamEvent, encode_sse

log = logging.getLogger("cogni_server.api")

_END = object()
SSE_QUEUE_EVENTS = 256  # events buffered per connection between the broker and a slow client
SSE_BATCH_EVENTS = 64  # events written in one chunk at most


async def _pumped(
    source: AsyncIterator[StreamEvent], heartbeat: float, idle_stop: float | None
) -> AsyncIterator[list[StreamEvent] | None]:
    """Yield the events queued so far (at least one), or None when ``heartbeat`` seconds pass
    without one; stop after ``idle_stop``."""
    queue: asyncio.Queue[object] = asyncio.Queue(maxsize=SSE_QUEUE_EVENTS)

    async def pump() -> None:
        try:
            async for item in source:
                await queue.put(item)  # waits while the client is behind (bounded memory)
        except asyncio.CancelledError:
            raise  # the response is over: nobody reads the queue any more
        except BaseException:
            await queue.put(_END)  # the reader re-raises the failure from the task
            raise
        await queue.put(_END)

    task = asyncio.ensure_future(pump())
    idle = 0.0
    try:
        while True:
            timeout = heartbeat if idle_stop is None else min(heartbeat, idle_stop)
            try:
                item = await asyncio.wait_for(queue.get(), timeout)
            except TimeoutError:
                idle += timeout
                if idle_stop is not None and idle >= idle_stop:
                    return
                yield None
                continue
            idle = 0.0
            batch: list[StreamEvent] = []
            while item is not _END:
                batch.append(item)  # type: ignore[arg-type]
                if len(batch) >= SSE_BATCH_EVENTS or queue.empty():
                    break
                item = queue.get_nowait()
            if batch:
                yield batch
            if item is _END:
                if task.done() and task.exception() is not None:
                    raise task.exception()  # type: ignore[misc]
                return
    finally:
        task.cancel()
        with contextlib.suppress(BaseException):
            await task
        aclose = getattr(source, "aclose", None)
        if aclose is not None:
            with contextlib.suppress(BaseException):
                await aclose()


def sse_response(
    source: AsyncIterator[StreamEvent],
    *,
    heartbeat: float,
    headers: dict[str, str],
    on_disconnect: Callable[[], Awaitable[None]] | None = None,
    idle_stop: float | None = None,
) -> StreamingResponse:
    """Stream events as SSE; ``on_disconnect`` runs if the client leaves before the stream ends."""

    async def body() -> AsyncIterator[bytes]:
        finished = False
        try:
            async for batch in _pumped(source, heartbeat, idle_stop):
                if batch is None:
                    yield HEARTBEAT
                elif len(batch) == 1:
                    event = batch[0]
                    yield encode_sse(event.event, event.data, event.id if event.resumable else None)
                else:
                    yield b"".join(encode_sse(e.event, e.data, e.id if e.resumable else None) for e in batch)
            finished = True
        except BrokerUnavailable as exc:  # past COGNI_BROKER_OUTAGE_SECONDS: say so, then end
            log.warning("stream ended: %s", exc)
            yield encode_sse("error", _unavailable(exc), None)
            finished = True
        finally:
            if not finished and on_disconnect is not None:
                with contextlib.suppress(Exception):
                    await asyncio.shield(on_disconnect())

    return StreamingResponse(
        body(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", **headers},
    )


def json_keepalive_response(
    result: Awaitable[bytes], *, heartbeat: float, headers: dict[str, str]
) -> StreamingResponse:
    """A JSON body that may take minutes: whitespace keep-alives, then the document."""

    async def body() -> AsyncIterator[bytes]:
        task = asyncio.ensure_future(result)
        try:
            while True:
                done, _ = await asyncio.wait({task}, timeout=heartbeat)
                if done:
                    break
                yield b"\n"
            try:
                yield task.result()
            except BrokerUnavailable as exc:  # the status line is sent already: answer the error in the body
                log.warning("wait ended: %s", exc)
                yield b'{"__error__":' + _unavailable(exc) + b"}"
        finally:
            if not task.done():
                task.cancel()

    return StreamingResponse(body(), media_type="application/json", headers=headers)


def _unavailable(exc: BrokerUnavailable) -> bytes:
    return dumps({"error": "BrokerUnavailable", "message": str(exc)})
