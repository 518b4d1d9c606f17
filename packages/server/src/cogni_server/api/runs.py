"""Thread runs and stateless runs: create (background, stream, wait), list, get, join, cancel, delete.

Routes parse, authorise and delegate to ``services.runs`` and ``services.streams``.
"""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import Response

from cogni_server.api.context import context, principal
from cogni_server.api.models import MAX_OFFSET, BatchRunBody, BulkCancelBody, RunCreateBody
from cogni_server.api.paging import select_fields
from cogni_server.api.params import LlmKey, parse_id, parse_ids, query_list
from cogni_server.api.responses import JSONResponse
from cogni_server.api.sse import json_keepalive_response, sse_response
from cogni_server.auth import Principal
from cogni_server.errors import Invalid
from cogni_server.runs.settings import load_run_settings
from cogni_server.services import authz
from cogni_server.services import runs as run_service
from cogni_server.services import streams as stream_service
from cogni_server.services.context import ServerContext
from cogni_server.storage.runs import run_out

router = APIRouter(dependencies=[Depends(principal)], tags=["runs"])


async def _may_create(ctx: ServerContext, who: Principal, thread_id: uuid.UUID | None, body: RunCreateBody) -> None:
    """Custom auth: ``threads.create_run`` allows the run (it may set its metadata), on a thread that
    matches its filters (a thread the run creates has nothing to match yet)."""
    value: dict[str, Any] = {
        "thread_id": thread_id,
        "assistant_id": body.assistant_id,
        "run_id": None,
        "status": "pending",
        "metadata": dict(body.metadata or {}),
        "prevent_insert_if_inflight": True,
        "multitask_strategy": body.multitask_strategy,
        "if_not_exists": body.if_not_exists,
        "after_seconds": body.after_seconds or 0,
        "kwargs": body.model_dump(exclude_unset=True),
        "action": None,
    }
    filters = await authz.authorize(ctx, who, "threads", "create_run", value)
    if value.get("metadata") or body.metadata is not None:
        body.metadata = value["metadata"]
    await authz.check_thread_if_exists(ctx, who, thread_id, filters)


async def _may(request: Request, who: Principal, action: str, thread_id: str, run_id: str | None = None) -> Any:
    """Custom auth: the threads handler for ``action`` allows it on a thread matching its filters."""
    ctx, tid = context(request), parse_id(thread_id, "thread_id")
    rid = parse_id(run_id, "run_id") if run_id is not None else None
    filters = await authz.authorize(ctx, who, "threads", action, {"thread_id": tid, "run_id": rid})
    await authz.check_thread(ctx, who, tid, filters)
    return ctx, tid, rid


CancelAction = Query("interrupt", pattern="^(interrupt|rollback)$")


def _locations(run: dict[str, Any], stateless: bool, suffix: str) -> dict[str, str]:
    t, r = run["thread_id"], run["run_id"]
    content = f"/runs/{r}" if stateless else f"/threads/{t}/runs/{r}"
    return {"Content-Location": content, "Location": f"/threads/{t}/runs/{r}/{suffix}"}


def _stream_run(ctx: ServerContext, run: dict[str, Any], stateless: bool) -> Response:
    run_id = str(run["run_id"])
    cancel_on_disconnect = load_run_settings(run["kwargs"]).on_disconnect == "cancel"

    async def on_disconnect() -> None:
        await run_service.cancel_runs(ctx, [run_id], "interrupt")

    return sse_response(
        stream_service.subscribe_run(ctx, run_id, "-1"),
        heartbeat=ctx.settings.stream_heartbeat_seconds,
        headers=_locations(run, stateless, "stream"),
        on_disconnect=on_disconnect if cancel_on_disconnect else None,
    )


def _wait_run(ctx: ServerContext, run: dict[str, Any], stateless: bool) -> Response:
    return json_keepalive_response(
        run_service.collect_output(ctx, str(run["run_id"])),
        heartbeat=ctx.settings.stream_heartbeat_seconds,
        headers=_locations(run, stateless, "join"),
    )


# -- thread runs -------------------------------------------------------------------------------


@router.post("/threads/{thread_id}/runs")
async def create_background(
    thread_id: str, body: RunCreateBody, request: Request, who: Principal = Depends(principal), llm_key: LlmKey = None
) -> Response:
    ctx, tid = context(request), parse_id(thread_id, "thread_id")
    await _may_create(ctx, who, tid, body)
    run = await run_service.create_run(ctx, who.tenant, tid, body, kind="background", llm_key=llm_key)
    return JSONResponse(run_out(run), headers=_locations(run, False, "stream"))


@router.post("/threads/{thread_id}/runs/stream")
async def create_stream(
    thread_id: str, body: RunCreateBody, request: Request, who: Principal = Depends(principal), llm_key: LlmKey = None
) -> Response:
    ctx = context(request)
    tid = parse_id(thread_id, "thread_id")
    await _may_create(ctx, who, tid, body)
    run = await run_service.create_run(ctx, who.tenant, tid, body, kind="stream", llm_key=llm_key)
    return _stream_run(ctx, run, False)


@router.post("/threads/{thread_id}/runs/wait")
async def create_wait(
    thread_id: str, body: RunCreateBody, request: Request, who: Principal = Depends(principal), llm_key: LlmKey = None
) -> Response:
    ctx = context(request)
    tid = parse_id(thread_id, "thread_id")
    await _may_create(ctx, who, tid, body)
    run = await run_service.create_run(ctx, who.tenant, tid, body, kind="wait", force_values=True, llm_key=llm_key)
    return _wait_run(ctx, run, False)


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
    ctx, tid, _ = await _may(request, who, "read", thread_id)
    rows = await run_service.list_runs(ctx, who.tenant, tid, status=status, limit=limit, offset=offset)
    return JSONResponse(select_fields([run_out(r) for r in rows], query_list(select, "select")))


@router.get("/threads/{thread_id}/runs/{run_id}")
async def get_run(thread_id: str, run_id: str, request: Request, who: Principal = Depends(principal)) -> Response:
    ctx, tid, rid = await _may(request, who, "read", thread_id, run_id)
    return JSONResponse(run_out(await run_service.get_run(ctx, who.tenant, tid, rid)))


@router.delete("/threads/{thread_id}/runs/{run_id}", status_code=204)
async def delete_run(thread_id: str, run_id: str, request: Request, who: Principal = Depends(principal)) -> Response:
    ctx, tid, rid = await _may(request, who, "delete", thread_id, run_id)
    await run_service.delete_run(ctx, who.tenant, tid, rid)
    return Response(status_code=204)


@router.get("/threads/{thread_id}/runs/{run_id}/join")
async def join_run(thread_id: str, run_id: str, request: Request, who: Principal = Depends(principal)) -> Response:
    ctx, tid, rid = await _may(request, who, "read", thread_id, run_id)
    run = await run_service.get_run(ctx, who.tenant, tid, rid)
    return json_keepalive_response(
        run_service.join_output(ctx, who.tenant, run), heartbeat=ctx.settings.stream_heartbeat_seconds, headers={}
    )


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
    ctx, tid, rid = await _may(request, who, "read", thread_id, run_id)
    run = await run_service.get_run(ctx, who.tenant, tid, rid)
    terminal = run["status"] in run_service.TERMINAL
    start = last_event_id if last_event_id else ("-1" if terminal else None)
    source = stream_service.subscribe_run(ctx, str(rid), start)
    modes = stream_service.check_modes(query_list(stream_mode, "stream_mode"))
    if modes:
        source = stream_service.only_modes(source, modes)

    async def on_disconnect() -> None:
        await run_service.cancel_runs(ctx, [str(rid)], "interrupt")

    return sse_response(
        source,
        heartbeat=ctx.settings.stream_heartbeat_seconds,
        headers={"Location": f"/threads/{thread_id}/runs/{run_id}/stream"},
        on_disconnect=on_disconnect if cancel_on_disconnect and not terminal else None,
        idle_stop=1.0 if terminal else None,
    )


@router.post("/threads/{thread_id}/runs/{run_id}/cancel")
async def cancel_run(
    thread_id: str,
    run_id: str,
    request: Request,
    wait: bool = False,
    action: str = CancelAction,
    who: Principal = Depends(principal),
) -> Response:
    ctx, tid, rid = await _may(request, who, "update", thread_id, run_id)
    await run_service.cancel_run(ctx, who.tenant, tid, rid, action=action, wait=wait)
    return Response(status_code=204 if wait else 202)


# -- stateless runs ----------------------------------------------------------------------------


@router.post("/runs")
async def stateless_background(
    body: RunCreateBody, request: Request, who: Principal = Depends(principal), llm_key: LlmKey = None
) -> Response:
    ctx = context(request)
    await _may_create(ctx, who, None, body)
    run = await run_service.create_run(ctx, who.tenant, None, body, kind="background", llm_key=llm_key)
    return JSONResponse(run_out(run), headers=_locations(run, True, "stream"))


@router.post("/runs/stream")
async def stateless_stream(
    body: RunCreateBody, request: Request, who: Principal = Depends(principal), llm_key: LlmKey = None
) -> Response:
    ctx = context(request)
    await _may_create(ctx, who, None, body)
    run = await run_service.create_run(ctx, who.tenant, None, body, kind="stream", llm_key=llm_key)
    return _stream_run(ctx, run, True)


@router.post("/runs/wait")
async def stateless_wait(
    body: RunCreateBody, request: Request, who: Principal = Depends(principal), llm_key: LlmKey = None
) -> Response:
    ctx = context(request)
    await _may_create(ctx, who, None, body)
    run = await run_service.create_run(ctx, who.tenant, None, body, kind="wait", force_values=True, llm_key=llm_key)
    return _wait_run(ctx, run, True)


@router.post("/runs/batch")
async def stateless_batch(
    body: list[BatchRunBody], request: Request, who: Principal = Depends(principal), llm_key: LlmKey = None
) -> Response:
    ctx = context(request)
    if not body:
        raise Invalid("batch must contain at least one run")
    out = []
    for item in body:
        tid = parse_id(item.thread_id, "thread_id") if item.thread_id is not None else None
        fields = item.model_dump(exclude={"thread_id"}, exclude_unset=True)
        run_body = RunCreateBody(**fields)
        await _may_create(ctx, who, tid, run_body)
        run = await run_service.create_run(ctx, who.tenant, tid, run_body, kind="batch", llm_key=llm_key)
        out.append(run_out(run))
    return JSONResponse(out)


@router.post("/runs/cancel", status_code=204)
async def bulk_cancel(
    body: BulkCancelBody,
    request: Request,
    action: str = CancelAction,
    who: Principal = Depends(principal),
) -> Response:
    ctx, tid = context(request), parse_id(body.thread_id, "thread_id") if body.thread_id else None
    filters = await authz.authorize(ctx, who, "threads", "update", {"thread_id": tid, "action": action})
    if filters and tid is None:
        raise Invalid("cancel: name the thread_id (your auth handler scopes threads by metadata)")
    if tid is not None:
        await authz.check_thread(ctx, who, tid, filters)
    await run_service.cancel_matching(
        ctx,
        who.tenant,
        thread_id=tid,
        run_ids=parse_ids(body.run_ids, "run_id"),
        status=body.status,
        action=action,
    )
    return Response(status_code=204)
