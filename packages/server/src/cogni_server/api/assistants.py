"""Assistants: CRUD, search/count with pagination headers, versions, graph, schemas, subgraphs.

Routes parse, authorise and delegate to ``services.assistants`` (and ``services.deletion``).
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from cogni_server.api.context import context, principal
from cogni_server.api.models import (
    AssistantCountBody,
    AssistantCreateBody,
    AssistantLatestBody,
    AssistantPatchBody,
    AssistantSearchBody,
    AssistantVersionsBody,
)
from cogni_server.api.paging import check_select, page_args, page_response
from cogni_server.api.responses import JSONResponse
from cogni_server.auth import Principal
from cogni_server.services import assistants as assistant_service
from cogni_server.services import deletion

router = APIRouter(dependencies=[Depends(principal)], tags=["assistants"])


@router.post("/assistants")
async def create_assistant(
    body: AssistantCreateBody, request: Request, who: Principal = Depends(principal)
) -> Response:
    row = await assistant_service.create(
        context(request),
        who.tenant,
        graph_id=body.graph_id,
        assistant_id=body.assistant_id,
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
    check_select(body.select, assistant_service.SELECT_FIELDS)
    rows, total = await assistant_service.search(
        context(request),
        who.tenant,
        metadata=body.metadata,
        graph_id=body.graph_id,
        name=body.name,
        **page_args(body),
    )
    return page_response(rows, total, body.offset, body.select)


@router.post("/assistants/count")
async def count_assistants(body: AssistantCountBody, request: Request, who: Principal = Depends(principal)) -> Response:
    n = await assistant_service.count(
        context(request), who.tenant, metadata=body.metadata, graph_id=body.graph_id, name=body.name
    )
    return JSONResponse(n)


@router.get("/assistants/{assistant_id}")
async def get_assistant(assistant_id: str, request: Request, who: Principal = Depends(principal)) -> Response:
    return JSONResponse(await assistant_service.resolve_assistant(context(request), who.tenant, assistant_id))


@router.patch("/assistants/{assistant_id}")
async def patch_assistant(
    assistant_id: str, body: AssistantPatchBody, request: Request, who: Principal = Depends(principal)
) -> Response:
    changes = body.model_dump(exclude_none=True)  # an explicit null means "leave as is", like an absent field
    return JSONResponse(await assistant_service.update(context(request), who.tenant, assistant_id, changes))


@router.delete("/assistants/{assistant_id}", status_code=204)
async def delete_assistant(
    assistant_id: str, request: Request, delete_threads: bool = False, who: Principal = Depends(principal)
) -> Response:
    await deletion.delete_assistant(context(request), who.tenant, assistant_id, delete_threads=delete_threads)
    return Response(status_code=204)


@router.get("/assistants/{assistant_id}/graph")
async def assistant_graph(
    assistant_id: str, request: Request, xray: str = "false", who: Principal = Depends(principal)
) -> Response:
    level = assistant_service.parse_xray(xray)
    return JSONResponse(await assistant_service.graph(context(request), who.tenant, assistant_id, level))


@router.get("/assistants/{assistant_id}/schemas")
async def assistant_schemas(assistant_id: str, request: Request, who: Principal = Depends(principal)) -> Response:
    return JSONResponse(await assistant_service.schemas(context(request), who.tenant, assistant_id))


@router.get("/assistants/{assistant_id}/subgraphs")
async def assistant_subgraphs(
    assistant_id: str, request: Request, recurse: bool = False, who: Principal = Depends(principal)
) -> Response:
    return JSONResponse(await assistant_service.subgraphs(context(request), who.tenant, assistant_id, None, recurse))


@router.get("/assistants/{assistant_id}/subgraphs/{namespace}")
async def assistant_subgraphs_ns(
    assistant_id: str, namespace: str, request: Request, recurse: bool = False, who: Principal = Depends(principal)
) -> Response:
    subgraphs = await assistant_service.subgraphs(context(request), who.tenant, assistant_id, namespace, recurse)
    return JSONResponse(subgraphs)


@router.post("/assistants/{assistant_id}/versions")
async def assistant_versions(
    assistant_id: str, body: AssistantVersionsBody, request: Request, who: Principal = Depends(principal)
) -> Response:
    rows = await assistant_service.versions(
        context(request), who.tenant, assistant_id, metadata=body.metadata, limit=body.limit, offset=body.offset
    )
    return JSONResponse(rows)


@router.post("/assistants/{assistant_id}/latest")
async def assistant_latest(
    assistant_id: str, body: AssistantLatestBody, request: Request, who: Principal = Depends(principal)
) -> Response:
    return JSONResponse(await assistant_service.set_latest(context(request), who.tenant, assistant_id, body.version))
