"""The thread-streaming protocol over HTTP: ``POST /threads/{id}/commands`` and the SSE event stream
``POST /threads/{id}/stream/events``. The WebSocket on the same path is in ``api/thread_ws.py``.

Protocol errors of a command answer HTTP 200 with an error body (the Python client discards the body
of any 4xx); a body that is not a command answers 400, another tenant's thread 404.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

import orjson
from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response, StreamingResponse

from cogni_server.api.context import context, principal
from cogni_server.api.params import LlmKey, parse_id
from cogni_server.api.responses import JSONResponse
from cogni_server.auth import AuthError, Principal
from cogni_server.errors import Invalid, NotFound
from cogni_server.services import authz, run_keys
from cogni_server.services import commands as command_service
from cogni_server.services import thread_stream as stream_service
from cogni_server.streaming import HEARTBEAT, encode_sse
from cogni_server.streaming.thread_log import LogClosed, StoredEvent

log = logging.getLogger("cogni_server.api")
router = APIRouter(dependencies=[Depends(principal)], tags=["thread-streaming"])
_END = object()
SSE_HEADERS = {"Cache-Control": "no-store", "X-Accel-Buffering": "no", "Connection": "keep-alive"}


def _json_body(raw: bytes) -> tuple[Any, Response | None]:
    try:
        return orjson.loads(raw), None
    except orjson.JSONDecodeError:
        return None, JSONResponse({"detail": "Invalid JSON body"}, status_code=400)


@router.post("/threads/{thread_id}/commands")
async def run_command(
    thread_id: str, request: Request, who: Principal = Depends(principal), llm_key: LlmKey = None
) -> Response:
    tid = parse_id(thread_id, "thread_id")
    llm_key = run_keys.accept_llm_key(context(request), llm_key, who.tenant)  # 422/403 as on run creation
    body, bad = _json_body(await request.body())
    if bad is not None:
        return bad
    if not command_service.valid_envelope(body):
        raw_id = body.get("id") if isinstance(body, dict) else None
        command_id = raw_id if isinstance(raw_id, int) and not isinstance(raw_id, bool) else None
        reply = command_service.error_reply(command_id, "invalid_argument", command_service.ENVELOPE_MESSAGE)
        return JSONResponse(reply, status_code=400)
    ctx = context(request)
    try:
        await authz.authorize_command(ctx, who, tid, body)  # a thread filtered out answers 404
    except AuthError as exc:  # refused by a custom auth handler: the protocol's error, read by the clients
        return JSONResponse(command_service.error_reply(body["id"], "permission_denied", exc.message))
    return JSONResponse(await command_service.execute(ctx, who.tenant, tid, body, llm_key=llm_key))


@router.post("/threads/{thread_id}/stream/events")
async def stream_events(thread_id: str, request: Request, who: Principal = Depends(principal)) -> Response:
    ctx = context(request)
    tid = parse_id(thread_id, "thread_id")
    body, bad = _json_body(await request.body())
    if bad is not None:
        return bad
    try:
        flt, since = stream_service.parse_filter(body)
    except Invalid as exc:
        return JSONResponse({"detail": str(exc)}, status_code=400)
    await authz.authorize_thread_read(ctx, who, tid)
    source = await stream_service.open_events(ctx, who.tenant, tid, flt, since)  # NotFound: 404
    return StreamingResponse(
        sse_frames(source, ctx.settings.stream_heartbeat_seconds, lambda: ctx.workers.drained),
        media_type="text/event-stream; charset=utf-8",
        headers=SSE_HEADERS,
    )


async def sse_frames(
    source: AsyncIterator[StoredEvent], heartbeat: float, draining: Callable[[], bool]
) -> AsyncIterator[bytes]:
    """Frames (``id:`` = seq), a heartbeat comment on idle, and never a clean end mid-thread: when the
    log shuts down or fails, or the server is stopping and its runs have ended (``draining``), the body
    stops with an error, so the client reconnects (elsewhere) with ``since``."""
    queue: asyncio.Queue[object] = asyncio.Queue(maxsize=1024)

    async def pump() -> None:
        try:
            async for event in source:
                await queue.put(event)
        except BaseException as exc:  # handed to the writer, which ends the response
            await queue.put(exc)
            return
        await queue.put(_END)

    task = asyncio.ensure_future(pump())
    idle = 0.0
    try:
        while True:
            if draining():
                raise ConnectionAbortedError("server shutting down; reconnect with since")
            try:
                item = await asyncio.wait_for(queue.get(), min(heartbeat, 1.0) if heartbeat > 1.0 else heartbeat)
            except TimeoutError:
                idle += min(heartbeat, 1.0) if heartbeat > 1.0 else heartbeat
                if idle >= heartbeat:
                    idle = 0.0
                    yield HEARTBEAT
                continue
            idle = 0.0
            if isinstance(item, StoredEvent):
                yield encode_sse(item.method, item.data, str(item.seq))
                continue
            if isinstance(item, NotFound):  # the thread turned out to be another tenant's
                return
            if isinstance(item, BaseException) and not isinstance(item, (LogClosed, asyncio.CancelledError)):
                log.warning("thread event stream failed: %r", item)
                error = {"type": "error", "id": None, "error": "unknown_error", "message": str(item)}
                yield encode_sse("error", orjson.dumps(error), None)
            raise ConnectionAbortedError("thread event stream interrupted; reconnect with since")
    finally:
        task.cancel()
        with contextlib.suppress(BaseException):
            await task
        aclose = getattr(source, "aclose", None)
        if aclose is not None:
            with contextlib.suppress(BaseException):
                await aclose()
