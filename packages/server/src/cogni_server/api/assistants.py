"""Assistants: CRUD, search/count with pagination headers, versions, graph, schemas, subgraphs."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import Response

from cogni_server.api.common import AppState, JSONResponse, app_state, check_select, page_args, page_response, principal
from cogni_server.api.models import (
    AssistantCountBody,
    AssistantCreateBody,
    AssistantLatestBody,
    AssistantPatchBody,
    AssistantSearchBody,
    AssistantVersionsBody,
)
from cogni_server.auth import Principal
from cogni_server.graphs import GraphNotFound
from cogni_server.services.assistants import assistant_uuid, resolve_assistant
from cogni_server.storage import assistants as assistant_repo
from cogni_server.storage import checkpoints as checkpoint_repo
from cogni_server.storage import threads as thread_repo

router = APIRouter(dependencies=[Depends(principal)], tags=["assistants"])
SELECT_FIELDS = {
    "assistant_id",
    "graph_id",
    "name",
    "description",
    "config",
    "context",
    "created_at",
    "updated_at",
    "metadata",
    "version",
}


def _check_graph(st: AppState, graph_id: str) -> None:
    if graph_id not in st.registry.graph_ids():
        raise HTTPException(
            422, detail=f"graph_id {graph_id!r} is not a graph of this server (have: {st.registry.graph_ids()})"
        )


@router.post("/assistants")
async def create_assistant(
    body: AssistantCreateBody, request: Request, who: Principal = Depends(principal)
) -> Response:
    st = app_state(request)
    _check_graph(st, body.graph_id)
    aid = uuid.uuid4()
    if body.assistant_id:
        try:
            aid = uuid.UUID(body.assistant_id)
        except ValueError:
            raise HTTPException(422, detail=f"assistant_id must be a UUID, got {body.assistant_id!r}") from None
    async with st.pool.connection() as conn:
        row = await assistant_repo.create(
            conn,
            owner=who.tenant,
            assistant_id=aid,
            graph_id=body.graph_id,
            config=body.config or {},
            context=body.context or {},
            metadata=body.metadata or {},
            name=body.name or "Untitled",
            description=body.description,
            if_exists=body.if_exists,
        )
    return JSONResponse(row)


@router.post("/assistants/search")
async def search_assistants(
    body: AssistantSearchBody, request: Request, who: Principal = Depends(principal)
) -> Response:
    check_select(body.select, SELECT_FIELDS)
    st = app_state(request)
    async with st.pool.connection() as conn:
        rows, total = await assistant_repo.search(
            conn,
            who.tenant,
            metadata=body.metadata,
            graph_id=body.graph_id,
            name=body.name,
            **page_args(body),
        )
    return page_response(rows, total, body.offset, body.select)


@router.post("/assistants/count")
async def count_assistants(body: AssistantCountBody, request: Request, who: Principal = Depends(principal)) -> Response:
    st = app_state(request)
    async with st.pool.connection() as conn:
        n = await assistant_repo.count(conn, who.tenant, metadata=body.metadata, graph_id=body.graph_id, name=body.name)
    return JSONResponse(n)


async def _get(st: AppState, tenant: str, assistant_id: str) -> dict[str, Any]:
    async with st.pool.connection() as conn:
        return await resolve_assistant(conn, st, tenant, assistant_id)


@router.get("/assistants/{assistant_id}")
async def get_assistant(assistant_id: str, request: Request, who: Principal = Depends(principal)) -> Response:
    return JSONResponse(await _get(app_state(request), who.tenant, assistant_id))


@router.patch("/assistants/{assistant_id}")
async def patch_assistant(
    assistant_id: str, body: AssistantPatchBody, request: Request, who: Principal = Depends(principal)
) -> Response:
    st = app_state(request)
    if body.graph_id is not None:
        _check_graph(st, body.graph_id)
    changes = body.model_dump(exclude_none=True)  # an explicit null means "leave as is", like an absent field
    async with st.pool.connection() as conn:
        row = await assistant_repo.update(conn, who.tenant, assistant_uuid(st, assistant_id), changes)
    return JSONResponse(row)


@router.delete("/assistants/{assistant_id}", status_code=204)
async def delete_assistant(
    assistant_id: str, request: Request, delete_threads: bool = False, who: Principal = Depends(principal)
) -> Response:
    st = app_state(request)
    aid = assistant_uuid(st, assistant_id)
    async with st.pool.connection() as conn:
        await assistant_repo.delete(conn, who.tenant, aid)
        if delete_threads:
            for thread_id in await thread_repo.delete_for_assistant(conn, who.tenant, aid):
                await checkpoint_repo.delete_thread(conn, thread_id)
    return Response(status_code=204)


@router.get("/assistants/{assistant_id}/graph")
async def assistant_graph(
    assistant_id: str, request: Request, xray: str = "false", who: Principal = Depends(principal)
) -> Response:
    st = app_state(request)
    assistant = await _get(st, who.tenant, assistant_id)
    level: bool | int
    if xray.lower() in ("true", "false"):
        level = xray.lower() == "true"
    else:
        try:
            level = int(xray)
        except ValueError:
            raise HTTPException(422, detail=f"xray must be a boolean or an integer, got {xray!r}") from None
    return JSONResponse(st.registry.drawable(assistant["graph_id"], xray=level))


@router.get("/assistants/{assistant_id}/schemas")
async def assistant_schemas(assistant_id: str, request: Request, who: Principal = Depends(principal)) -> Response:
    st = app_state(request)
    assistant = await _get(st, who.tenant, assistant_id)
    return JSONResponse(st.registry.schemas(assistant["graph_id"]))


@router.get("/assistants/{assistant_id}/subgraphs")
async def assistant_subgraphs(
    assistant_id: str, request: Request, recurse: bool = False, who: Principal = Depends(principal)
) -> Response:
    st = app_state(request)
    assistant = await _get(st, who.tenant, assistant_id)
    return JSONResponse(st.registry.subgraphs(assistant["graph_id"], None, recurse))


@router.get("/assistants/{assistant_id}/subgraphs/{namespace}")
async def assistant_subgraphs_ns(
    assistant_id: str, namespace: str, request: Request, recurse: bool = False, who: Principal = Depends(principal)
) -> Response:
    st = app_state(request)
    assistant = await _get(st, who.tenant, assistant_id)
    try:
        return JSONResponse(st.registry.subgraphs(assistant["graph_id"], namespace, recurse))
    except GraphNotFound:
        raise HTTPException(404, detail=f"subgraph namespace {namespace!r} not found") from None


@router.post("/assistants/{assistant_id}/versions")
async def assistant_versions(
    assistant_id: str, body: AssistantVersionsBody, request: Request, who: Principal = Depends(principal)
) -> Response:
    st = app_state(request)
    async with st.pool.connection() as conn:
        rows = await assistant_repo.versions(
            conn,
            who.tenant,
            assistant_uuid(st, assistant_id),
            metadata=body.metadata,
            limit=body.limit,
            offset=body.offset,
        )
    return JSONResponse(rows)


@router.post("/assistants/{assistant_id}/latest")
async def assistant_latest(
    assistant_id: str, body: AssistantLatestBody, request: Request, who: Principal = Depends(principal)
) -> Response:
    st = app_state(request)
    async with st.pool.connection() as conn:
        row = await assistant_repo.set_latest(conn, who.tenant, assistant_uuid(st, assistant_id), body.version)
    return JSONResponse(row)
