"""A2A at the reference's paths: ``GET /.well-known/agent-card.json?assistant_id=...`` (discovery) and
``POST /a2a/{assistant_id}`` (JSON-RPC 2.0: ``message/send``, ``message/stream`` as SSE, ``tasks/get``,
``tasks/cancel``).

Both answer only an authenticated caller (the server's normal auth) and only for assistants it can
see. JSON-RPC problems are JSON-RPC error objects (HTTP 200), as the protocol expects; an unknown
assistant in the path is a plain 404. The work is in ``services.a2a_tasks``.

``X-Cogni-LLM-Key`` (the caller's per-account LLM key) is checked first, as on run creation (422, 403: HTTP
statuses, not JSON-RPC errors), and given to the run a message starts.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable
from typing import Any

from a2a.compat.v0_3 import types as a2a
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response, StreamingResponse
from pydantic import BaseModel, ValidationError

from cogni_server.api.context import context, principal
from cogni_server.api.params import LlmKey
from cogni_server.api.responses import JSONResponse
from cogni_server.api.sse import json_keepalive_response
from cogni_server.auth import Principal
from cogni_server.errors import Invalid, NotFound
from cogni_server.services import a2a_tasks, protocol_authz, run_keys
from cogni_server.services.a2a_tasks import A2AError
from cogni_server.services.context import ServerContext

router = APIRouter(dependencies=[Depends(principal)], tags=["a2a"])

PARSE_ERROR, INVALID_REQUEST, METHOD_NOT_FOUND = -32700, -32600, -32601
# methods of A2A v0.3 this server does not offer (push notifications, resubscription, extended card)
_UNSUPPORTED = frozenset(
    {
        "tasks/resubscribe",
        "tasks/pushNotificationConfig/set",
        "tasks/pushNotificationConfig/get",
        "tasks/pushNotificationConfig/list",
        "tasks/pushNotificationConfig/delete",
        "agent/getAuthenticatedExtendedCard",
    }
)


def _dump(model: BaseModel) -> Any:
    return model.model_dump(mode="json", by_alias=True, exclude_none=True)


def _error(request_id: Any, code: int, message: str) -> Response:
    return JSONResponse({"jsonrpc": "2.0", "id": request_id, "error": {"code": code, "message": message}})


async def _envelope(request_id: Any, result: Awaitable[BaseModel]) -> bytes:
    """The JSON-RPC response of a result that is still coming (its A2A error, if it fails)."""
    try:
        body: dict[str, Any] = {"jsonrpc": "2.0", "id": request_id, "result": _dump(await result)}
    except A2AError as exc:
        body = {"jsonrpc": "2.0", "id": request_id, "error": {"code": exc.code, "message": exc.message}}
    return json.dumps(body).encode()


def _result(request_id: Any, result: BaseModel) -> Response:
    return JSONResponse({"jsonrpc": "2.0", "id": request_id, "result": _dump(result)})


@router.get("/.well-known/agent-card.json")
async def agent_card(
    request: Request, assistant_id: str | None = Query(None), who: Principal = Depends(principal)
) -> Response:
    if not assistant_id:
        raise Invalid("the assistant_id query parameter is required (the agent card is per assistant)")
    await protocol_authz.may_read_assistant(context(request), who, assistant_id)
    card = await a2a_tasks.agent_card(context(request), who.tenant, assistant_id, str(request.base_url))
    return JSONResponse(_dump(card))


def _params(model: type[BaseModel], params: Any) -> Any:
    try:
        return model.model_validate(params if params is not None else {})
    except ValidationError as exc:
        where = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        raise A2AError(a2a_tasks.INVALID_PARAMS, f"invalid params: {where}") from None


@router.post("/a2a/{assistant_id}")
async def jsonrpc(
    assistant_id: str, request: Request, who: Principal = Depends(principal), llm_key: LlmKey = None
) -> Response:
    llm_key = run_keys.accept_llm_key(context(request), llm_key, who.tenant)
    try:
        body = json.loads(await request.body())
    except (ValueError, RecursionError):
        return _error(None, PARSE_ERROR, "request body is not valid JSON")
    if not isinstance(body, dict) or body.get("jsonrpc") != "2.0" or not isinstance(body.get("method"), str):
        return _error(None, INVALID_REQUEST, "expected a JSON-RPC 2.0 request object with a 'method'")
    rid, method, params = body.get("id"), body["method"], body.get("params")
    ctx, tenant = context(request), who.tenant
    try:
        metadata = await _authorize(ctx, who, assistant_id, method, params)
        if method == "message/send":
            submitted, finished = await a2a_tasks.send_message(
                ctx, tenant, assistant_id, _params(a2a.MessageSendParams, params), metadata, llm_key=llm_key
            )
            if finished is None:
                return _result(rid, submitted)
            # a run may take minutes: whitespace keep-alives, then the JSON-RPC response
            return json_keepalive_response(
                _envelope(rid, finished), heartbeat=ctx.settings.stream_heartbeat_seconds, headers={}
            )
        if method == "message/stream":
            items = await a2a_tasks.stream_message(
                ctx, tenant, assistant_id, _params(a2a.MessageSendParams, params), metadata, llm_key=llm_key
            )
            return _sse(rid, items, ctx.settings.stream_heartbeat_seconds)
        if method == "tasks/get":
            query = _params(a2a.TaskQueryParams, params)
            return _result(rid, await a2a_tasks.get_task(ctx, tenant, assistant_id, query))
        if method == "tasks/cancel":
            ident = _params(a2a.TaskIdParams, params)
            return _result(rid, await a2a_tasks.cancel_task(ctx, tenant, assistant_id, ident))
    except A2AError as exc:
        return _error(rid, exc.code, exc.message)
    if method in _UNSUPPORTED:
        return _error(rid, a2a_tasks.UNSUPPORTED_OPERATION, f"{method} is not supported by this server")
    return _error(rid, METHOD_NOT_FOUND, f"unknown method {method!r}")


async def _authorize(
    ctx: ServerContext, who: Principal, assistant_id: str, method: str, params: Any
) -> dict[str, Any] | None:
    """Custom auth's handlers for the run or thread behind the method (see ``services.protocol_authz``);
    for a message, the metadata the handler set."""
    try:
        if method in ("message/send", "message/stream"):
            message = _params(a2a.MessageSendParams, params).message
            return await protocol_authz.may_send(ctx, who, assistant_id, message.context_id)
        elif method in ("tasks/get", "tasks/cancel"):
            task_id = _params(a2a.TaskIdParams, params).id
            action = "read" if method == "tasks/get" else "update"
            await protocol_authz.may_touch_task(ctx, who, assistant_id, task_id, action)
    except NotFound as exc:  # the handler's filters hide the thread: as if it did not exist
        code = a2a_tasks.TASK_NOT_FOUND if method.startswith("tasks/") else a2a_tasks.INVALID_PARAMS
        raise A2AError(code, str(exc)) from None
    return None


def _sse(request_id: Any, items: AsyncIterator[BaseModel], heartbeat: float) -> Response:
    """Each item as one JSON-RPC response in an SSE ``data:`` line; comments keep an idle stream open."""

    async def body() -> AsyncIterator[bytes]:
        pending: asyncio.Future[BaseModel] | None = None
        try:
            while True:
                if pending is None:
                    pending = asyncio.ensure_future(anext(items))
                done, _ = await asyncio.wait({pending}, timeout=heartbeat)
                if not done:
                    yield b": heartbeat\n\n"
                    continue
                try:
                    item = pending.result()
                except StopAsyncIteration:
                    return
                except A2AError as exc:
                    error = {"jsonrpc": "2.0", "id": request_id, "error": {"code": exc.code, "message": exc.message}}
                    yield b"data: " + json.dumps(error).encode() + b"\n\n"
                    return
                pending = None
                envelope = {"jsonrpc": "2.0", "id": request_id, "result": _dump(item)}
                yield b"data: " + json.dumps(envelope).encode() + b"\n\n"
        finally:
            if pending is not None and not pending.done():
                pending.cancel()
                with contextlib.suppress(BaseException):
                    await pending
            aclose = getattr(items, "aclose", None)
            if aclose is not None:
                with contextlib.suppress(BaseException):
                    await aclose()

    return StreamingResponse(body(), media_type="text/event-stream", headers={"Cache-Control": "no-store"})
