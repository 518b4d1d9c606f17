"""Crons: create (stateless or on a thread), get, patch, delete, search, count.

Routes parse, authorise and delegate to ``services.crons``; the scheduler is ``services.scheduler``.
"""

from __future__ import annotations

import uuid
from typing import Any, Literal

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from pydantic import Field

from cogni_server.api.context import context, principal
from cogni_server.api.models import MAX_OFFSET
from cogni_server.api.paging import check_select, page_response
from cogni_server.api.params import LlmKey, parse_id
from cogni_server.api.responses import JSONResponse
from cogni_server.auth import Principal
from cogni_server.auth.custom import user_configurable
from cogni_server.services import authz
from cogni_server.services import crons as cron_service
from cogni_server.services.context import ServerContext
from cogni_server.services.cron_schedule import now
from cogni_server.services.crons import CronCreate, CronPatch
from cogni_server.services.run_request import Json, Strict
from cogni_server.services.runs import with_user

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


async def _may_create(ctx: ServerContext, who: Principal, thread_id: uuid.UUID | None, body: CronCreate) -> None:
    """Custom auth: ``crons.create`` allows the cron (it may set its metadata); its runs see the user."""
    if not authz.enabled(ctx) or who.user is None:
        return
    value: dict[str, Any] = {
        "payload": body.model_dump(exclude_unset=True),
        "schedule": body.schedule,
        "cron_id": None,
        "thread_id": thread_id,
        "user_id": who.tenant,
        "end_time": body.end_time,
        "metadata": dict(body.metadata or {}),
    }
    await authz.authorize(ctx, who, "crons", "create", value)
    if value.get("metadata") or body.metadata is not None:
        body.metadata = value["metadata"]
    body.config = with_user(body.config or {}, user_configurable(who.user))


async def _may(request: Request, who: Principal, action: str, cron_id: str) -> tuple[ServerContext, uuid.UUID]:
    """Custom auth: the crons handler for ``action`` allows it on a cron matching its filters."""
    ctx, cid = context(request), parse_id(cron_id, "cron_id")
    await authz.check_cron(ctx, who, cid, await authz.authorize(ctx, who, "crons", action, {"cron_id": cid}))
    return ctx, cid


@router.post("/runs/crons")
async def create_cron(
    body: CronCreate, request: Request, who: Principal = Depends(principal), llm_key: LlmKey = None
) -> Response:
    ctx = context(request)
    await _may_create(ctx, who, None, body)
    cron = await cron_service.create(ctx, who.tenant, _user_id(who), None, body, llm_key=llm_key)
    return JSONResponse(cron)


@router.post("/threads/{thread_id}/runs/crons")
async def create_thread_cron(
    thread_id: str, body: CronCreate, request: Request, who: Principal = Depends(principal), llm_key: LlmKey = None
) -> Response:
    ctx, tid = context(request), parse_id(thread_id, "thread_id")
    await _may_create(ctx, who, tid, body)
    await authz.authorize_thread_read(ctx, who, tid)
    return JSONResponse(await cron_service.create(ctx, who.tenant, _user_id(who), tid, body, llm_key=llm_key))


@router.post("/runs/crons/search")
async def search_crons(body: CronSearchBody, request: Request, who: Principal = Depends(principal)) -> Response:
    check_select(body.select, cron_service.SELECT_FIELDS)
    ctx, tid = context(request), parse_id(body.thread_id, "thread_id") if body.thread_id else None
    value = {"assistant_id": body.assistant_id, "thread_id": tid, "limit": body.limit, "offset": body.offset}
    metadata, possible = await authz.search_filter(ctx, who, "crons", value, body.metadata)
    if not possible:
        return page_response([], 0, body.offset, body.select)
    rows, total = await cron_service.search(
        ctx,
        who.tenant,
        assistant_id=body.assistant_id,
        thread_id=tid,
        enabled=body.enabled,
        metadata=metadata,
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
    ctx, tid = context(request), parse_id(body.thread_id, "thread_id") if body.thread_id else None
    value = {"assistant_id": body.assistant_id, "thread_id": tid}
    metadata, possible = await authz.search_filter(ctx, who, "crons", value, body.metadata)
    n = await cron_service.count(
        ctx, who.tenant, assistant_id=body.assistant_id, thread_id=tid, enabled=body.enabled, metadata=metadata
    )
    return JSONResponse(n if possible else 0)


@router.get("/runs/crons/{cron_id}")
async def get_cron(cron_id: str, request: Request, who: Principal = Depends(principal)) -> Response:
    ctx, cid = await _may(request, who, "read", cron_id)
    return JSONResponse(await cron_service.get(ctx, who.tenant, cid))


@router.patch("/runs/crons/{cron_id}")
async def patch_cron(
    cron_id: str, body: CronPatch, request: Request, who: Principal = Depends(principal), llm_key: LlmKey = None
) -> Response:
    ctx, cid = await _may(request, who, "update", cron_id)
    cron: dict[str, Any] = await cron_service.patch(ctx, who.tenant, cid, body, llm_key=llm_key)
    return JSONResponse(cron)


@router.delete("/runs/crons/{cron_id}", status_code=204)
async def delete_cron(cron_id: str, request: Request, who: Principal = Depends(principal)) -> Response:
    ctx, cid = await _may(request, who, "delete", cron_id)
    await cron_service.delete(ctx, who.tenant, cid)
    return Response(status_code=204)
