"""The thread-streaming protocol over one WebSocket: ``/threads/{id}/stream/events``.

Every client frame is a command (``run.start``, ``input.respond``, ``state.*``, ...) plus
``subscription.subscribe`` / ``subscription.unsubscribe``; replies and events share the socket as text
frames. One reader follows the thread's log for the whole socket and sends each event once when any
subscription matches it; a new subscription first gets its replay (events after its ``since``, or
the current run without one) before it joins the live events.

Authentication is the HTTP one, run on the upgrade request's headers. Browsers cannot set headers on
a WebSocket, so a socket without ``x-api-key``/``authorization`` headers may carry the same
credentials in cookies (``x-api-key=<key>`` or ``access_token=<jwt>``); such a socket from a foreign
``Origin`` (neither this host nor ``COGNI_CORS_ALLOW_ORIGINS``) is refused. Rejections happen after the
upgrade, with close code 4000 + the HTTP status (4401, 4403, 4404, 4422), which the clients treat as
final; a server shutdown closes with 1012 (the clients reconnect and replay).

An ``X-Cogni-LLM-Key`` header on the upgrade request is the per-account LLM key of every run the socket's
commands start; checked like on run creation (4422 malformed or no ``COGNI_SECRETS_KEY``, 4403 another tenant's).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import orjson
from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from cogni_ai_core import LLM_KEY_HEADER
from cogni_server.api.context import authenticate
from cogni_server.api.errors import status_of
from cogni_server.auth import AuthError, Principal
from cogni_server.errors import DomainError, Invalid, NotFound
from cogni_server.services import authz, run_keys
from cogni_server.services import commands as command_service
from cogni_server.services import thread_stream as stream_service
from cogni_server.services.context import ServerContext
from cogni_server.streaming.thread_log import EventFilter, LogClosed, StoredEvent

log = logging.getLogger("cogni_server.api")
router = APIRouter(tags=["thread-streaming"])
COOKIE_CREDENTIALS = {"x-api-key": "x-api-key", "access_token": "authorization"}


def credentials(websocket: WebSocket) -> tuple[dict[str, str], bool]:
    """The headers to authenticate, and whether the credential came from a cookie."""
    headers = dict(websocket.headers.items())
    if "x-api-key" in headers or "authorization" in headers:
        return headers, False
    for cookie, header in COOKIE_CREDENTIALS.items():
        value = websocket.cookies.get(cookie)
        if value:
            headers[header] = f"Bearer {value}" if header == "authorization" else value
            return headers, True
    return headers, False


def origin_allowed(websocket: WebSocket, ctx: ServerContext) -> bool:
    origin = websocket.headers.get("origin")
    if not origin:
        return True  # not a browser
    allowed = {o.strip() for o in (ctx.settings.cors_allow_origins or "").split(",") if o.strip()}
    return origin in allowed or "*" in allowed or urlsplit(origin).netloc == websocket.headers.get("host")


@router.websocket("/threads/{thread_id}/stream/events")
async def thread_socket(websocket: WebSocket, thread_id: str) -> None:
    await websocket.accept()
    ctx: ServerContext = websocket.app.state.cogni
    try:
        tid = uuid.UUID(thread_id)
    except ValueError:
        await websocket.close(4422, "thread_id must be a UUID")
        return
    headers, from_cookie = credentials(websocket)
    try:
        who = await authenticate(websocket, headers)
        await authz.authorize_thread_read(ctx, who, tid)
    except NotFound:
        await websocket.close(4404, "thread not found")
        return
    except AuthError as exc:
        await websocket.close(4000 + exc.status_code, exc.message[:120])
        return
    try:
        llm_key = run_keys.accept_llm_key(ctx, websocket.headers.get(LLM_KEY_HEADER), who.tenant)
    except DomainError as exc:  # the message names the header, never the key
        await websocket.close(4000 + status_of(exc), str(exc)[:120])
        return
    if from_cookie and not origin_allowed(websocket, ctx):
        await websocket.close(4403, "cookie credentials from a foreign origin")
        return
    try:
        owned = await stream_service.check_thread(ctx, who.tenant, tid)
    except NotFound:
        await websocket.close(4404, "thread not found")
        return
    await Session(websocket, ctx, who, tid, owned, llm_key).serve()


@dataclass
class _Subscription:
    filter: EventFilter
    after: int  # events up to here were replayed (or predate it): only later ones are sent live


class Session:
    """One socket: commands in order, one log reader, subscriptions matched per event."""

    def __init__(
        self,
        websocket: WebSocket,
        ctx: ServerContext,
        who: Principal,
        thread_id: uuid.UUID,
        owned: bool,
        llm_key: str | None = None,
    ):
        self.ws, self.ctx, self.tenant, self.thread_id, self.owned = websocket, ctx, who.tenant, thread_id, owned
        self.who = who
        self.llm_key = llm_key  # the runs this socket's commands start get it (services/run_keys.py)
        self.subs: dict[str, _Subscription] = {}
        self.position = 0
        self.reader: asyncio.Task[None] | None = None
        self.lock = asyncio.Lock()  # the reader and a subscribe's replay never interleave
        self.send_lock = asyncio.Lock()
        self.late: set[asyncio.Future[None]] = set()
        self.closed = False

    async def serve(self) -> None:
        watchdog = asyncio.ensure_future(self.close_when_drained())
        try:
            while not self.closed:
                text = await self.ws.receive_text()
                reply = await self.handle(text)
                if reply is not None:
                    await self.send(orjson.dumps(reply))
        except (WebSocketDisconnect, RuntimeError):  # gone, or closed by the reader
            pass
        finally:
            self.closed = True
            watchdog.cancel()
            for task in self.late:
                task.cancel()
            if self.reader is not None:
                self.reader.cancel()
                with contextlib.suppress(BaseException):
                    await self.reader

    async def close_when_drained(self) -> None:
        """A stopping server closes with 1012 once its runs ended: the clients reconnect and replay."""
        while not self.closed and not self.ctx.workers.drained:  # noqa: ASYNC110 (a flag the worker pool owns)
            await asyncio.sleep(1.0)
        await self.close(1012, "server restarting")

    async def send(self, data: bytes) -> None:
        async with self.send_lock:
            await self.ws.send_text(data.decode())

    async def close(self, code: int, reason: str) -> None:
        if not self.closed:
            self.closed = True
            with contextlib.suppress(Exception):
                await self.ws.close(code, reason)

    async def handle(self, text: str) -> dict[str, Any] | None:
        try:
            command = orjson.loads(text)
        except orjson.JSONDecodeError:
            return command_service.error_reply(None, "invalid_argument", "Protocol commands must be valid JSON.")
        if not command_service.valid_envelope(command):
            raw = command.get("id") if isinstance(command, dict) else None
            cid = raw if isinstance(raw, int) and not isinstance(raw, bool) else None
            return command_service.error_reply(cid, "invalid_argument", command_service.ENVELOPE_MESSAGE)
        cid, method = command["id"], command["method"]
        params = command.get("params") or {}
        try:
            if method == "subscription.subscribe":
                return await self.subscribe(cid, params)
            if method == "subscription.unsubscribe":
                return self.unsubscribe(cid, params)
            try:
                await authz.authorize_command(self.ctx, self.who, self.thread_id, command)
            except AuthError as exc:  # refused by a custom auth handler
                return command_service.error_reply(command.get("id"), "permission_denied", exc.message)
            return await command_service.execute(
                self.ctx, self.tenant, self.thread_id, command, over_websocket=True, llm_key=self.llm_key
            )
        except NotFound as exc:
            try:
                await stream_service.check_thread(self.ctx, self.tenant, self.thread_id)
            except NotFound:  # the thread became another tenant's: this socket is done
                await self.close(4404, "thread not found")
                return None
            return command_service.error_reply(cid, "invalid_argument", str(exc))  # no such thread (yet)

    async def subscribe(self, cid: int, params: Any) -> dict[str, Any]:
        try:
            flt, since = stream_service.parse_filter(params)
        except Invalid as exc:
            return command_service.error_reply(cid, "invalid_argument", str(exc))
        if not self.owned:
            self.owned = await stream_service.check_thread(self.ctx, self.tenant, self.thread_id)
        after, undecided = await stream_service.replay_plan(self.ctx, self.thread_id, since)
        tid = str(self.thread_id)
        if self.reader is None:
            self.position = await self.ctx.thread_log.high_water(tid)
            source = stream_service.guarded(
                self.ctx, self.tenant, self.thread_id, self.ctx.thread_log.subscribe(tid, self.position), self.owned
            )
            self.reader = asyncio.ensure_future(self.follow(source))
        replayed = 0
        async with self.lock:
            if after < self.position:
                for event in await self.ctx.thread_log.read_range(tid, after, self.position):
                    if flt.matches(event):
                        await self.send(event.data)
                        replayed += 1
            sid = str(uuid.uuid4())
            self.subs[sid] = _Subscription(flt, max(after, self.position))
            if undecided is not None:  # no run in flight: the last run's events, unless one begins now
                self.late.add(asyncio.ensure_future(self.replay_later(sid, undecided, self.position)))
        result = {"subscription_id": sid, "replayed_events": replayed}
        return {"type": "success", "id": cid, "result": result, "meta": {"applied_through_seq": self.position}}

    async def replay_later(self, sid: str, run_id: str, position: int) -> None:
        await asyncio.sleep(stream_service.DECIDE_SECONDS)
        async with self.lock:
            sub = self.subs.get(sid)
            if sub is None or self.position > position:  # unsubscribed, or a new run began meanwhile
                return
            for event in await stream_service.late_replay(self.ctx, self.thread_id, run_id, position):
                if sub.filter.matches(event):
                    await self.send(event.data)

    def unsubscribe(self, cid: int, params: Any) -> dict[str, Any]:
        sid = params.get("subscription_id") if isinstance(params, dict) else None
        if not isinstance(sid, str) or sid not in self.subs:
            return command_service.error_reply(cid, "no_such_subscription", f"Unknown subscription: {sid}")
        del self.subs[sid]
        return {"type": "success", "id": cid, "result": {}, "meta": {"applied_through_seq": self.position}}

    async def follow(self, source: Any) -> None:
        """The socket's one log reader: each event once, if any subscription wants it."""
        try:
            async for event in source:
                async with self.lock:
                    self.position = event.seq
                    if self._wanted(event):
                        await self.send(event.data)
        except NotFound:
            await self.close(4404, "thread not found")
        except LogClosed:
            await self.close(1012, "server restarting")
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("thread socket reader failed: %r", exc)
            await self.close(1011, "event stream failed")

    def _wanted(self, event: StoredEvent) -> bool:
        return any(event.seq > sub.after and sub.filter.matches(event) for sub in self.subs.values())
