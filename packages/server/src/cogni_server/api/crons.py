"""Crons: create (stateless or on a thread), get, patch, delete, search, count.

Routes parse, authorise and delegate to ``services.crons``; the scheduler is ``services.scheduler``.
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from pydantic import Field

from cogni_server.api.context import context, principal
from cogni_server.api.models import MAX_OFFSET
from cogni_server.api.paging import check_select, page_response
from cogni_server.api.params import parse_id
from cogni_server.api.responses import JSONResponse
from cogni_server.auth import Principal
from cogni_server.services import crons as cron_service
from cogni_server.services.cron_schedule import now
from cogni_server.services.crons import CronCreate, CronPatch
from cogni_server.services.run_request import Json, Strict

router = APIRouter(dependencies=[Depends(principal)], tags=["crons"])

CronSortBy = Literal["cron_id", "assistant_id", "thread_id", "created_at", "updated_at", "next_run_date", "end_time"]


class CronSearchBody(Strict):
    assistant_id: str | None = None
    thread_id: str | None = None
    enabled: bool | None = None
    metadata: Json | None = None
    limit: int = Field(default=10, ge=1, le=1000)
    offset: int = Field(default=0, ge=0, le=MAX_OFFSET)
    sort_by: CronSortBy | None = None
    sort_order: Literal["asc", "desc"] | None = None
    select: list[str] | None = None


class CronCountBody(Strict):
    assistant_id: str | None = None
    thread_id: str | None = None
    enabled: bool | None = None
    metadata: Json | None = None


def _user_id(who: Principal) -> str:
    return "" if who.auth_kind == "none" else who.tenant


@router.post("/runs/crons")
async def create_cron(body: CronCreate, request: Request, who: Principal = Depends(principal)) -> Response:
    cron = await cron_service.create(context(request), who.tenant, _user_id(who), None, body)
    return JSONResponse(cron)


@router.post("/threads/{thread_id}/runs/crons")
async def create_thread_cron(
    thread_id: str, body: CronCreate, request: Request, who: Principal = Depends(principal)
) -> Response:
    tid = parse_id(thread_id, "thread_id")
    return JSONResponse(await cron_service.create(context(request), who.tenant, _user_id(who), tid, body))


@router.post("/runs/crons/search")
async def search_crons(body: CronSearchBody, request: Request, who: Principal = Depends(principal)) -> Response:
    check_select(body.select, cron_service.SELECT_FIELDS)
    rows, total = await cron_service.search(
        context(request),
        who.tenant,
        assistant_id=body.assistant_id,
        thread_id=parse_id(body.thread_id, "thread_id") if body.thread_id else None,
        enabled=body.enabled,
        metadata=body.metadata,
        limit=body.limit,
        offset=body.offset,
        sort_by=body.sort_by or "created_at",
        sort_order=body.sort_order or "desc",
    )
    if body.select and "now" in body.select:
        stamp = now().isoformat()
        rows = [{**row, "now": stamp} for row in rows]
    return page_response(rows, total, body.offset, body.select)


@router.post("/runs/crons/count")
async def count_crons(body: CronCountBody, request: Request, who: Principal = Depends(principal)) -> Response:
    n = await cron_service.count(
        context(request),
        who.tenant,
        assistant_id=body.assistant_id,
        thread_id=parse_id(body.thread_id, "thread_id") if body.thread_id else None,
        enabled=body.enabled,
        metadata=body.metadata,
    )
    return JSONResponse(n)


@router.get("/runs/crons/{cron_id}")
async def get_cron(cron_id: str, request: Request, who: Principal = Depends(principal)) -> Response:
    return JSONResponse(await cron_service.get(context(request), who.tenant, parse_id(cron_id, "cron_id")))


@router.patch("/runs/crons/{cron_id}")
async def patch_cron(cron_id: str, body: CronPatch, request: Request, who: Principal = Depends(principal)) -> Response:
    cron: dict[str, Any] = await cron_service.patch(context(request), who.tenant, parse_id(cron_id, "cron_id"), body)
    return JSONResponse(cron)


@router.delete("/runs/crons/{cron_id}", status_code=204)
async def delete_cron(cron_id: str, request: Request, who: Principal = Depends(principal)) -> Response:
    await cron_service.delete(context(request), who.tenant, parse_id(cron_id, "cron_id"))
    return Response(status_code=204)
