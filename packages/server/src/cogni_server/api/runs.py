"""Thread runs and stateless runs: create (background, stream, wait), list, get, join, cancel, delete."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any, get_args

from fastapi import APIRouter, Depends, Header, HTTPException, Query, Request
from fastapi.responses import Response

from cogni_server.api.common import (
    AppState,
    JSONResponse,
    app_state,
    parse_id,
    principal,
    query_list,
    select_fields,
)
from cogni_server.api.models import MAX_OFFSET, BatchRunBody, BulkCancelBody, RunCreateBody, StreamModeName
from cogni_server.api.sse import json_keepalive_response, sse_response
from cogni_server.auth import Principal
from cogni_server.services import runs as run_service
from cogni_server.storage import runs as run_repo
from cogni_server.storage import threads as thread_repo
from cogni_server.storage.errors import NotFound
from cogni_server.streaming import StreamEvent

router = APIRouter(dependencies=[Depends(principal)], tags=["runs"])


def _locations(run: dict[str, Any], stateless: bool, suffix: str) -> dict[str, str]:
    t, r = run["thread_id"], run["run_id"]
    content = f"/runs/{r}" if stateless else f"/threads/{t}/runs/{r}"
    return {"Content-Location": content, "Location": f"/threads/{t}/runs/{r}/{suffix}"}


def _subscribe(st: AppState, run_id: str, last_event_id: str | None) -> AsyncIterator[StreamEvent]:
    try:
        return st.broker.subscribe(run_id, last_event_id=last_event_id)
    except ValueError as exc:
        raise HTTPException(422, detail=f"invalid Last-Event-ID: {exc}") from None


def _stream_run(st: AppState, run: dict[str, Any], stateless: bool) -> Response:
    run_id = str(run["run_id"])
    cancel_on_disconnect = run["kwargs"].get("on_disconnect") == "cancel"

    async def on_disconnect() -> None:
        await run_service.cancel_runs(st, [run_id], "interrupt")

    return sse_response(
        _subscribe(st, run_id, "-1"),
        heartbeat=st.settings.stream_heartbeat_seconds,
        headers=_locations(run, stateless, "stream"),
        on_disconnect=on_disconnect if cancel_on_disconnect else None,
    )


def _wait_run(st: AppState, run: dict[str, Any], stateless: bool) -> Response:
    return json_keepalive_response(
        run_service.collect_output(st, str(run["run_id"])),
        heartbeat=st.settings.stream_heartbeat_seconds,
        headers=_locations(run, stateless, "join"),
    )


# -- thread runs -------------------------------------------------------------------------------


@router.post("/threads/{thread_id}/runs")
async def create_background(
    thread_id: str, body: RunCreateBody, request: Request, who: Principal = Depends(principal)
) -> Response:
    st = app_state(request)
    run = await run_service.create_run(st, who.tenant, thread_id, body, kind="background")
    return JSONResponse(run_repo.run_out(run), headers=_locations(run, False, "stream"))


@router.post("/threads/{thread_id}/runs/stream")
async def create_stream(
    thread_id: str, body: RunCreateBody, request: Request, who: Principal = Depends(principal)
) -> Response:
    st = app_state(request)
    run = await run_service.create_run(st, who.tenant, thread_id, body, kind="stream")
    return _stream_run(st, run, False)


@router.post("/threads/{thread_id}/runs/wait")
async def create_wait(
    thread_id: str, body: RunCreateBody, request: Request, who: Principal = Depends(principal)
) -> Response:
    st = app_state(request)
    run = await run_service.create_run(st, who.tenant, thread_id, body, kind="wait", force_values=True)
    return _wait_run(st, run, False)


@router.get("/threads/{thread_id}/runs")
async def list_runs(
    thread_id: str,
    request: Request,
    limit: int = Query(10, ge=1, le=1000),
    offset: int = Query(0, ge=0, le=MAX_OFFSET),
    status: str | None = None,
    select: list[str] | None = Query(None),
    who: Principal = Depends(principal),
) -> Response:
    st = app_state(request)
    tid = parse_id(thread_id, "thread_id")
    async with st.pool.connection() as conn:
        if not await thread_repo.exists(conn, who.tenant, tid):
            raise NotFound(f"thread {thread_id} not found")
        rows = await run_repo.list_for_thread(conn, who.tenant, tid, status=status, limit=limit, offset=offset)
    return JSONResponse(select_fields([run_repo.run_out(r) for r in rows], query_list(select, "select")))


async def _get_run(st: AppState, tenant: str, thread_id: str, run_id: str) -> dict[str, Any]:
    tid, rid = parse_id(thread_id, "thread_id"), parse_id(run_id, "run_id")
    async with st.pool.connection() as conn:
        return await run_repo.get(conn, tenant, tid, rid)


@router.get("/threads/{thread_id}/runs/{run_id}")
async def get_run(thread_id: str, run_id: str, request: Request, who: Principal = Depends(principal)) -> Response:
    run = await _get_run(app_state(request), who.tenant, thread_id, run_id)
    return JSONResponse(run_repo.run_out(run))


@router.delete("/threads/{thread_id}/runs/{run_id}", status_code=204)
async def delete_run(thread_id: str, run_id: str, request: Request, who: Principal = Depends(principal)) -> Response:
    st = app_state(request)
    async with st.pool.connection() as conn:
        await run_repo.delete(conn, who.tenant, parse_id(thread_id, "thread_id"), parse_id(run_id, "run_id"))
    return Response(status_code=204)


@router.get("/threads/{thread_id}/runs/{run_id}/join")
async def join_run(thread_id: str, run_id: str, request: Request, who: Principal = Depends(principal)) -> Response:
    st = app_state(request)
    run = await _get_run(st, who.tenant, thread_id, run_id)

    async def result() -> bytes:
        if run["status"] not in run_service.TERMINAL:
            await run_service.wait_until_done(st, run_id)
        async with st.pool.connection() as conn:
            try:
                final = await run_repo.get(conn, who.tenant, None, run["run_id"])
            except NotFound:
                final = {**run, "status": "interrupted"}
        return await run_service.thread_output(st, who.tenant, run["thread_id"], final)

    return json_keepalive_response(result(), heartbeat=st.settings.stream_heartbeat_seconds, headers={})


@router.get("/threads/{thread_id}/runs/{run_id}/stream")
async def join_stream(
    thread_id: str,
    run_id: str,
    request: Request,
    cancel_on_disconnect: bool = False,
    stream_mode: list[str] | None = Query(None),
    last_event_id: str | None = Header(None, alias="Last-Event-ID"),
    who: Principal = Depends(principal),
) -> Response:
    st = app_state(request)
    run = await _get_run(st, who.tenant, thread_id, run_id)
    terminal = run["status"] in run_service.TERMINAL
    source = _subscribe(st, run_id, last_event_id if last_event_id else ("-1" if terminal else None))
    modes = set(query_list(stream_mode, "stream_mode"))
    unknown = sorted(modes - set(get_args(StreamModeName)))
    if unknown:
        raise HTTPException(422, detail=f"unknown stream_mode {unknown[0]!r}")
    if modes:
        source = _filter_modes(source, modes)

    async def on_disconnect() -> None:
        await run_service.cancel_runs(st, [run_id], "interrupt")

    return sse_response(
        source,
        heartbeat=st.settings.stream_heartbeat_seconds,
        headers={"Location": f"/threads/{thread_id}/runs/{run_id}/stream"},
        on_disconnect=on_disconnect if cancel_on_disconnect and not terminal else None,
        idle_stop=1.0 if terminal else None,
    )


async def _filter_modes(source: AsyncIterator[StreamEvent], modes: set[str]) -> AsyncIterator[StreamEvent]:
    if "messages-tuple" in modes:
        modes.add("messages")
    async for event in source:
        base = event.event.split("|", 1)[0].split("/", 1)[0]
        if base in modes or base in ("metadata", "error", "end"):
            yield event


@router.post("/threads/{thread_id}/runs/{run_id}/cancel")
async def cancel_run(
    thread_id: str,
    run_id: str,
    request: Request,
    wait: bool = False,
    action: str = Query("interrupt", pattern="^(interrupt|rollback)$"),
    who: Principal = Depends(principal),
) -> Response:
    st = app_state(request)
    run = await _get_run(st, who.tenant, thread_id, run_id)
    if run["status"] in run_service.TERMINAL:
        raise HTTPException(409, detail=f"run {run_id} is already {run['status']}")
    await run_service.cancel_runs(st, [run_id], action)
    if wait:
        await run_service.wait_until_done(st, run_id, limit=60.0)
        return Response(status_code=204)
    return Response(status_code=202)


# -- stateless runs ----------------------------------------------------------------------------


@router.post("/runs")
async def stateless_background(body: RunCreateBody, request: Request, who: Principal = Depends(principal)) -> Response:
    st = app_state(request)
    run = await run_service.create_run(st, who.tenant, None, body, kind="background")
    return JSONResponse(run_repo.run_out(run), headers=_locations(run, True, "stream"))


@router.post("/runs/stream")
async def stateless_stream(body: RunCreateBody, request: Request, who: Principal = Depends(principal)) -> Response:
    st = app_state(request)
    run = await run_service.create_run(st, who.tenant, None, body, kind="stream")
    return _stream_run(st, run, True)


@router.post("/runs/wait")
async def stateless_wait(body: RunCreateBody, request: Request, who: Principal = Depends(principal)) -> Response:
    st = app_state(request)
    run = await run_service.create_run(st, who.tenant, None, body, kind="wait", force_values=True)
    return _wait_run(st, run, True)


@router.post("/runs/batch")
async def stateless_batch(body: list[BatchRunBody], request: Request, who: Principal = Depends(principal)) -> Response:
    st = app_state(request)
    if not body:
        raise HTTPException(422, detail="batch must contain at least one run")
    out = []
    for item in body:
        fields = item.model_dump(exclude={"thread_id"}, exclude_unset=True)
        run = await run_service.create_run(st, who.tenant, item.thread_id, RunCreateBody(**fields), kind="batch")
        out.append(run_repo.run_out(run))
    return JSONResponse(out)


@router.post("/runs/cancel", status_code=204)
async def bulk_cancel(
    body: BulkCancelBody,
    request: Request,
    action: str = Query("interrupt", pattern="^(interrupt|rollback)$"),
    who: Principal = Depends(principal),
) -> Response:
    st = app_state(request)
    if body.thread_id is None and body.run_ids is None and body.status is None:
        raise HTTPException(422, detail="give thread_id, run_ids or status")
    thread_id = parse_id(body.thread_id, "thread_id") if body.thread_id else None
    run_ids: list[uuid.UUID] | None = (
        [parse_id(r, "run_id") for r in body.run_ids] if body.run_ids is not None else None
    )
    async with st.pool.connection() as conn:
        rows = await run_repo.inflight(
            conn, who.tenant, thread_id=thread_id, run_ids=run_ids, status=body.status or "all"
        )
    if rows:
        await run_service.cancel_runs(st, [str(r["run_id"]) for r in rows], action)
    return Response(status_code=204)
