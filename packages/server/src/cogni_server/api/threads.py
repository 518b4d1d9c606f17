"""Threads: create, search, count, get, patch, delete, copy, prune, state, history, thread stream.

Routes parse, authorise and delegate to ``services.threads``, ``services.deletion``,
``services.state`` and ``services.streams``.
"""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import Response

from cogni_server.api.context import context, principal
from cogni_server.api.models import (
    HistoryBody,
    StateCheckpointBody,
    StateUpdateBody,
    ThreadCountBody,
    ThreadCreateBody,
    ThreadPatchBody,
    ThreadPruneBody,
    ThreadSearchBody,
)
from cogni_server.api.paging import check_select, page_args, page_response
from cogni_server.api.params import parse_id, parse_ids, query_list
from cogni_server.api.responses import JSONResponse
from cogni_server.api.sse import sse_response
from cogni_server.auth import Principal
from cogni_server.errors import Invalid, NotFound
from cogni_server.services import authz, deletion
from cogni_server.services import state as state_service
from cogni_server.services import streams as stream_service
from cogni_server.services import threads as thread_service
from cogni_server.services.context import ServerContext
from cogni_server.services.thread_ttl import get_ttl

router = APIRouter(dependencies=[Depends(principal)], tags=["threads"])


async def _authorized(
    request: Request, who: Principal, action: str, thread_id: str, extra: dict[str, Any] | None = None
) -> tuple[ServerContext, uuid.UUID]:
    """Custom auth: the threads handler for ``action`` allows it and the thread matches its filters
    (404 otherwise). ``extra`` is the rest of the handler's value; it may change it."""
    ctx, tid = context(request), parse_id(thread_id, "thread_id")
    value = {"thread_id": tid, **(extra or {})}
    filters = await authz.authorize(ctx, who, "threads", action, value)
    if extra is not None:
        extra.update({k: v for k, v in value.items() if k != "thread_id"})
    await authz.check_thread(ctx, who, tid, filters)
    return ctx, tid


async def _authorized_ids(request: Request, who: Principal, action: str, ids: list[uuid.UUID]) -> list[uuid.UUID]:
    """The ids among ``ids`` the threads handler lets the caller ``action`` (prune skips the others)."""
    ctx = context(request)
    filters = await authz.authorize(ctx, who, "threads", action, {"thread_id": None, "thread_ids": ids})
    if not filters:
        return ids
    kept = []
    for tid in ids:
        try:
            await authz.check_thread(ctx, who, tid, filters)
        except NotFound:
            continue
        kept.append(tid)
    return kept


@router.post("/threads")
async def create_thread(body: ThreadCreateBody, request: Request, who: Principal = Depends(principal)) -> Response:
    ctx, tid = context(request), parse_id(body.thread_id, "thread_id") if body.thread_id else None
    value = {"thread_id": tid, "metadata": dict(body.metadata or {}), "if_exists": body.if_exists, "ttl": body.ttl}
    filters = await authz.authorize(ctx, who, "threads", "create", value)
    if body.if_exists == "do_nothing":  # would answer an existing thread: only one the caller may see
        await authz.check_thread_if_exists(ctx, who, tid, filters)
    thread = await thread_service.create(
        ctx,
        who.tenant,
        thread_id=tid,
        metadata=value["metadata"] if value.get("metadata") or body.metadata is not None else None,
        if_exists=body.if_exists,
        graph_id=body.graph_id,
        supersteps=body.supersteps,
        ttl=body.ttl,
    )
    return JSONResponse(thread)


@router.post("/threads/search")
async def search_threads(body: ThreadSearchBody, request: Request, who: Principal = Depends(principal)) -> Response:
    check_select(body.select, thread_service.SELECT_FIELDS)
    select = [*body.select, "extracted"] if body.select and body.extract else body.select
    ctx, ids = context(request), parse_ids(body.ids, "ids[]")
    value = {"metadata": body.metadata, "values": body.values, "status": body.status, "ids": ids, **page_args(body)}
    metadata, possible = await authz.search_filter(ctx, who, "threads", value, body.metadata)
    if not possible:
        return page_response([], 0, body.offset, select)
    rows, total = await thread_service.search(
        ctx,
        who.tenant,
        metadata=metadata,
        values=body.values,
        status=body.status,
        ids=ids,
        extract=body.extract,
        **page_args(body),
    )
    return page_response(rows, total, body.offset, select)


@router.post("/threads/count")
async def count_threads(body: ThreadCountBody, request: Request, who: Principal = Depends(principal)) -> Response:
    ctx, value = context(request), {"metadata": body.metadata, "values": body.values, "status": body.status}
    metadata, possible = await authz.search_filter(ctx, who, "threads", value, body.metadata)
    n = await thread_service.count(ctx, who.tenant, metadata=metadata, values=body.values, status=body.status)
    n = n if possible else 0
    return JSONResponse(n)


@router.post("/threads/prune")
async def prune_threads(body: ThreadPruneBody, request: Request, who: Principal = Depends(principal)) -> Response:
    ctx, ids = context(request), [parse_id(raw, "thread_ids[]") for raw in body.thread_ids]
    ids = await _authorized_ids(request, who, "delete", ids)
    pruned = await deletion.prune_threads(ctx, who.tenant, ids, body.strategy)
    return JSONResponse({"pruned_count": pruned})


@router.get("/threads/{thread_id}")
async def get_thread(
    thread_id: str,
    request: Request,
    include: list[str] | None = Query(None),
    who: Principal = Depends(principal),
) -> Response:
    ctx, tid = await _authorized(request, who, "read", thread_id)
    thread = await thread_service.get(ctx, who.tenant, tid)
    extras = {part.strip() for item in query_list(include, "include") for part in item.split(",")} - {""}
    if unknown := extras - {"ttl"}:
        raise Invalid(f"include: unknown value(s) {sorted(unknown)}; this server knows 'ttl'")
    if "ttl" in extras:
        thread["ttl"] = await get_ttl(ctx, who.tenant, tid)
    return JSONResponse(thread)


@router.patch("/threads/{thread_id}")
async def patch_thread(
    thread_id: str, body: ThreadPatchBody, request: Request, who: Principal = Depends(principal)
) -> Response:
    value: dict[str, Any] = {"metadata": body.metadata}
    ctx, tid = await _authorized(request, who, "update", thread_id, value)
    thread = await thread_service.patch(ctx, who.tenant, tid, metadata=value["metadata"], ttl=body.ttl)
    if request.headers.get("prefer") == "return=minimal":
        return Response(status_code=204)
    return JSONResponse(thread)


@router.delete("/threads/{thread_id}", status_code=204)
async def delete_thread(thread_id: str, request: Request, who: Principal = Depends(principal)) -> Response:
    ctx, tid = await _authorized(request, who, "delete", thread_id)
    await deletion.delete_thread(ctx, who.tenant, tid)
    return Response(status_code=204)


@router.post("/threads/{thread_id}/copy")
async def copy_thread(thread_id: str, request: Request, who: Principal = Depends(principal)) -> Response:
    ctx, tid = await _authorized(request, who, "read", thread_id)
    return JSONResponse(await thread_service.copy(ctx, who.tenant, tid))


# -- state -------------------------------------------------------------------------------------


async def _state_response(
    request: Request,
    who: Principal,
    thread_id: str,
    checkpoint: dict[str, Any] | None,
    subgraphs: bool,
    select: list[str] | None,
) -> Response:
    """The thread's state (latest, or at ``checkpoint``), trimmed to ``select``: three routes answer this."""
    ctx, tid = await _authorized(request, who, "read", thread_id)
    state = await state_service.get_state(ctx, who.tenant, tid, checkpoint=checkpoint, subgraphs=subgraphs)
    return JSONResponse(state_service.select_state(state, select))


async def _history(
    request: Request,
    who: Principal,
    thread_id: str,
    limit: int,
    before: Any,
    metadata: dict[str, Any] | None,
    checkpoint: dict[str, Any] | None,
) -> list[dict[str, Any]]:
    """The thread's past states, newest first (GET and POST history differ only in their filters)."""
    ctx, tid = await _authorized(request, who, "read", thread_id)
    return await state_service.history(
        ctx,
        who.tenant,
        tid,
        limit=limit,
        before=before,
        metadata=metadata,
        checkpoint=checkpoint,
    )


@router.get("/threads/{thread_id}/state")
async def get_state(
    thread_id: str,
    request: Request,
    subgraphs: bool = False,
    select: list[str] | None = Query(None),
    who: Principal = Depends(principal),
) -> Response:
    return await _state_response(request, who, thread_id, None, subgraphs, query_list(select, "select"))


@router.post("/threads/{thread_id}/state")
async def update_state(
    thread_id: str, body: StateUpdateBody, request: Request, who: Principal = Depends(principal)
) -> Response:
    checkpoint = dict(body.checkpoint or {})
    if body.checkpoint_id:
        checkpoint["checkpoint_id"] = body.checkpoint_id
    ctx, tid = await _authorized(request, who, "update", thread_id, {"values": body.values, "as_node": body.as_node})
    result = await state_service.update_state(
        ctx,
        who.tenant,
        tid,
        values=body.values,
        as_node=body.as_node,
        checkpoint=checkpoint or None,
    )
    return JSONResponse(result)


@router.post("/threads/{thread_id}/state/checkpoint")
async def state_at_checkpoint(
    thread_id: str, body: StateCheckpointBody, request: Request, who: Principal = Depends(principal)
) -> Response:
    return await _state_response(request, who, thread_id, body.checkpoint, body.subgraphs, body.select)


@router.get("/threads/{thread_id}/state/{checkpoint_id}")
async def state_by_id(
    thread_id: str,
    checkpoint_id: str,
    request: Request,
    subgraphs: bool = False,
    select: list[str] | None = Query(None),
    who: Principal = Depends(principal),
) -> Response:
    checkpoint = {"checkpoint_id": checkpoint_id}
    return await _state_response(request, who, thread_id, checkpoint, subgraphs, query_list(select, "select"))


@router.post("/threads/{thread_id}/history")
async def post_history(
    thread_id: str, body: HistoryBody, request: Request, who: Principal = Depends(principal)
) -> Response:
    states = await _history(request, who, thread_id, body.limit, body.before, body.metadata, body.checkpoint)
    return JSONResponse([state_service.select_state(s, body.select) for s in states])


@router.get("/threads/{thread_id}/history")
async def get_history(
    thread_id: str,
    request: Request,
    limit: int = Query(10, ge=1, le=1000),
    before: str | None = None,
    who: Principal = Depends(principal),
) -> Response:
    return JSONResponse(await _history(request, who, thread_id, limit, before, None, None))


# -- thread-level stream -----------------------------------------------------------------------


@router.get("/threads/{thread_id}/stream")
async def thread_stream(
    thread_id: str,
    request: Request,
    stream_mode: list[str] | None = Query(None),
    last_event_id: str | None = Header(None, alias="Last-Event-ID"),
    who: Principal = Depends(principal),
) -> Response:
    ctx, tid = await _authorized(request, who, "read", thread_id)
    source = await stream_service.subscribe_thread(ctx, who.tenant, tid, last_event_id)
    return sse_response(source, heartbeat=ctx.settings.stream_heartbeat_seconds, headers={})
