"""Thread runs and stateless runs: create (background, stream, wait), list, get, join, cancel, delete.

Routes parse, authorise and delegate to ``services.runs`` and ``services.streams``.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import Response

from cogni_server.api.context import context, principal
from cogni_server.api.models import MAX_OFFSET, BatchRunBody, BulkCancelBody, RunCreateBody
from cogni_server.api.paging import select_fields
from cogni_server.api.params import parse_id, parse_ids, query_list
from cogni_server.api.responses import JSONResponse
from cogni_server.api.sse import json_keepalive_response, sse_response
from cogni_server.auth import Principal
from cogni_server.errors import Invalid
from cogni_server.runs.settings import load_run_settings
from cogni_server.services import runs as run_service
from cogni_server.services import streams as stream_service
from cogni_server.services.context import ServerContext
from cogni_server.storage.runs import run_out

router = APIRouter(dependencies=[Depends(principal)], tags=["runs"])
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
    thread_id: str, body: RunCreateBody, request: Request, who: Principal = Depends(principal)
) -> Response:
    tid = parse_id(thread_id, "thread_id")
    run = await run_service.create_run(context(request), who.tenant, tid, body, kind="background")
    return JSONResponse(run_out(run), headers=_locations(run, False, "stream"))


@router.post("/threads/{thread_id}/runs/stream")
async def create_stream(
    thread_id: str, body: RunCreateBody, request: Request, who: Principal = Depends(principal)
) -> Response:
    ctx = context(request)
    tid = parse_id(thread_id, "thread_id")
    run = await run_service.create_run(ctx, who.tenant, tid, body, kind="stream")
    return _stream_run(ctx, run, False)


@router.post("/threads/{thread_id}/runs/wait")
async def create_wait(
    thread_id: str, body: RunCreateBody, request: Request, who: Principal = Depends(principal)
) -> Response:
    ctx = context(request)
    tid = parse_id(thread_id, "thread_id")
    run = await run_service.create_run(ctx, who.tenant, tid, body, kind="wait", force_values=True)
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
    tid = parse_id(thread_id, "thread_id")
    rows = await run_service.list_runs(context(request), who.tenant, tid, status=status, limit=limit, offset=offset)
    return JSONResponse(select_fields([run_out(r) for r in rows], query_list(select, "select")))


@router.get("/threads/{thread_id}/runs/{run_id}")
async def get_run(thread_id: str, run_id: str, request: Request, who: Principal = Depends(principal)) -> Response:
    tid, rid = parse_id(thread_id, "thread_id"), parse_id(run_id, "run_id")
    return JSONResponse(run_out(await run_service.get_run(context(request), who.tenant, tid, rid)))


@router.delete("/threads/{thread_id}/runs/{run_id}", status_code=204)
async def delete_run(thread_id: str, run_id: str, request: Request, who: Principal = Depends(principal)) -> Response:
    tid, rid = parse_id(thread_id, "thread_id"), parse_id(run_id, "run_id")
    await run_service.delete_run(context(request), who.tenant, tid, rid)
    return Response(status_code=204)


@router.get("/threads/{thread_id}/runs/{run_id}/join")
async def join_run(thread_id: str, run_id: str, request: Request, who: Principal = Depends(principal)) -> Response:
    ctx = context(request)
    tid, rid = parse_id(thread_id, "thread_id"), parse_id(run_id, "run_id")
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
    ctx = context(request)
    tid, rid = parse_id(thread_id, "thread_id"), parse_id(run_id, "run_id")
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
    tid, rid = parse_id(thread_id, "thread_id"), parse_id(run_id, "run_id")
    await run_service.cancel_run(context(request), who.tenant, tid, rid, action=action, wait=wait)
    return Response(status_code=204 if wait else 202)


# -- stateless runs ----------------------------------------------------------------------------


@router.post("/runs")
async def stateless_background(body: RunCreateBody, request: Request, who: Principal = Depends(principal)) -> Response:
    run = await run_service.create_run(context(request), who.tenant, None, body, kind="background")
    return JSONResponse(run_out(run), headers=_locations(run, True, "stream"))


@router.post("/runs/stream")
async def stateless_stream(body: RunCreateBody, request: Request, who: Principal = Depends(principal)) -> Response:
    ctx = context(request)
    run = await run_service.create_run(ctx, who.tenant, None, body, kind="stream")
    return _stream_run(ctx, run, True)


@router.post("/runs/wait")
async def stateless_wait(body: RunCreateBody, request: Request, who: Principal = Depends(principal)) -> Response:
    ctx = context(request)
    run = await run_service.create_run(ctx, who.tenant, None, body, kind="wait", force_values=True)
    return _wait_run(ctx, run, True)


@router.post("/runs/batch")
async def stateless_batch(body: list[BatchRunBody], request: Request, who: Principal = Depends(principal)) -> Response:
    ctx = context(request)
    if not body:
        raise Invalid("batch must contain at least one run")
    out = []
    for item in body:
        tid = parse_id(item.thread_id, "thread_id") if item.thread_id is not None else None
        fields = item.model_dump(exclude={"thread_id"}, exclude_unset=True)
        run = await run_service.create_run(ctx, who.tenant, tid, RunCreateBody(**fields), kind="batch")
        out.append(run_out(run))
    return JSONResponse(out)


@router.post("/runs/cancel", status_code=204)
async def bulk_cancel(
    body: BulkCancelBody,
    request: Request,
    action: str = CancelAction,
    who: Principal = Depends(principal),
) -> Response:
    await run_service.cancel_matching(
        context(request),
        who.tenant,
        thread_id=parse_id(body.thread_id, "thread_id") if body.thread_id else None,
        run_ids=parse_ids(body.run_ids, "run_id"),
        status=body.status,
        action=action,
    )
    return Response(status_code=204)
