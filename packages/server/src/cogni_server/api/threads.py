"""Threads: create, search, count, get, patch, delete, copy, prune, state, history, thread stream."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Depends, Header, HTTPException, Query, Request
from fastapi.responses import Response

from cogni_server.api.common import (
    JSONResponse,
    app_state,
    check_select,
    page_args,
    page_response,
    parse_id,
    principal,
    query_list,
)
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
from cogni_server.api.sse import sse_response
from cogni_server.auth import Principal
from cogni_server.services import runs as run_service
from cogni_server.services import state as state_service
from cogni_server.storage import checkpoints as checkpoint_repo
from cogni_server.storage import runs as run_repo
from cogni_server.storage import threads as thread_repo

router = APIRouter(dependencies=[Depends(principal)], tags=["threads"])


@router.post("/threads")
async def create_thread(body: ThreadCreateBody, request: Request, who: Principal = Depends(principal)) -> Response:
    if body.supersteps:
        raise HTTPException(422, detail="unsupported field for this server: supersteps")
    if body.ttl is not None:
        raise HTTPException(422, detail="unsupported field for this server: ttl")
    st = app_state(request)
    tid = parse_id(body.thread_id, "thread_id") if body.thread_id else uuid.uuid4()
    metadata = dict(body.metadata or {})
    if body.graph_id:
        if body.graph_id not in st.registry.graph_ids():
            raise HTTPException(422, detail=f"graph_id {body.graph_id!r} is not a graph of this server")
        metadata.setdefault("graph_id", body.graph_id)
    async with st.pool.connection() as conn:
        thread = await thread_repo.create(
            conn, owner=who.tenant, thread_id=tid, metadata=metadata, if_exists=body.if_exists
        )
    return JSONResponse(thread)


@router.post("/threads/search")
async def search_threads(body: ThreadSearchBody, request: Request, who: Principal = Depends(principal)) -> Response:
    if body.extract:
        raise HTTPException(422, detail="unsupported field for this server: extract")
    check_select(body.select, thread_repo.SELECT_FIELDS)
    st = app_state(request)
    ids = [parse_id(i, "ids[]") for i in body.ids] if body.ids is not None else None
    async with st.pool.connection() as conn:
        rows, total = await thread_repo.search(
            conn,
            who.tenant,
            metadata=body.metadata,
            values=body.values,
            status=body.status,
            ids=ids,
            **page_args(body),
        )
    return page_response(rows, total, body.offset, body.select)


@router.post("/threads/count")
async def count_threads(body: ThreadCountBody, request: Request, who: Principal = Depends(principal)) -> Response:
    st = app_state(request)
    async with st.pool.connection() as conn:
        n = await thread_repo.count(conn, who.tenant, metadata=body.metadata, values=body.values, status=body.status)
    return JSONResponse(n)


@router.post("/threads/prune")
async def prune_threads(body: ThreadPruneBody, request: Request, who: Principal = Depends(principal)) -> Response:
    st = app_state(request)
    pruned = 0
    for raw in body.thread_ids:
        tid = parse_id(raw, "thread_ids[]")
        async with st.pool.connection() as conn:
            if not await thread_repo.exists(conn, who.tenant, tid):
                continue
            if body.strategy == "delete":
                await _delete_thread(request, who.tenant, tid)
            else:
                await checkpoint_repo.keep_latest(conn, tid)
            pruned += 1
    return JSONResponse({"pruned_count": pruned})


@router.get("/threads/{thread_id}")
async def get_thread(thread_id: str, request: Request, who: Principal = Depends(principal)) -> Response:
    st = app_state(request)
    async with st.pool.connection() as conn:
        thread = await thread_repo.get(conn, who.tenant, parse_id(thread_id, "thread_id"))
    return JSONResponse(thread)


@router.patch("/threads/{thread_id}")
async def patch_thread(
    thread_id: str, body: ThreadPatchBody, request: Request, who: Principal = Depends(principal)
) -> Response:
    if body.ttl is not None:
        raise HTTPException(422, detail="unsupported field for this server: ttl")
    st = app_state(request)
    async with st.pool.connection() as conn:
        thread = await thread_repo.patch_metadata(conn, who.tenant, parse_id(thread_id, "thread_id"), body.metadata)
    if request.headers.get("prefer") == "return=minimal":
        return Response(status_code=204)
    return JSONResponse(thread)


async def _delete_thread(request: Request, tenant: str, tid: uuid.UUID) -> None:
    st = app_state(request)
    async with st.pool.connection() as conn:
        running = await run_repo.inflight(conn, tenant, thread_id=tid, run_ids=None, status="all")
    if running:
        await run_service.cancel_runs(st, [str(r["run_id"]) for r in running], "interrupt")
    async with st.pool.connection() as conn:
        await thread_repo.delete(conn, tenant, tid)
        await checkpoint_repo.delete_thread(conn, tid)


@router.delete("/threads/{thread_id}", status_code=204)
async def delete_thread(thread_id: str, request: Request, who: Principal = Depends(principal)) -> Response:
    await _delete_thread(request, who.tenant, parse_id(thread_id, "thread_id"))
    return Response(status_code=204)


@router.post("/threads/{thread_id}/copy")
async def copy_thread(thread_id: str, request: Request, who: Principal = Depends(principal)) -> Response:
    st = app_state(request)
    async with st.pool.connection() as conn:
        thread = await thread_repo.copy(conn, who.tenant, parse_id(thread_id, "thread_id"), uuid.uuid4())
    return JSONResponse(thread)


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
    state = await state_service.get_state(
        app_state(request), who.tenant, parse_id(thread_id, "thread_id"), checkpoint=checkpoint, subgraphs=subgraphs
    )
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
    return await state_service.history(
        app_state(request),
        who.tenant,
        parse_id(thread_id, "thread_id"),
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
    result = await state_service.update_state(
        app_state(request),
        who.tenant,
        parse_id(thread_id, "thread_id"),
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
    st = app_state(request)
    tid = parse_id(thread_id, "thread_id")
    async with st.pool.connection() as conn:
        await thread_repo.get(conn, who.tenant, tid)
    try:
        source = st.broker.subscribe_thread(str(tid), last_event_id=last_event_id or None)
    except ValueError as exc:
        raise HTTPException(422, detail=f"invalid Last-Event-ID: {exc}") from None
    return sse_response(source, heartbeat=st.settings.stream_heartbeat_seconds, headers={})
