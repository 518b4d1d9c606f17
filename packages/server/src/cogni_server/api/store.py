"""The store: ``PUT/GET/DELETE /store/items``, ``POST /store/items/search``, ``POST /store/namespaces``.

Shapes follow both official clients: PUT and DELETE answer 204 with no body, GET of an absent item
answers 200 ``null`` (both clients turn it into None/null; a 404 would make the Python client
raise), DELETE carries a JSON body, GET joins the namespace's labels with ``.``.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from cogni_server.api.context import context, principal
from cogni_server.api.responses import JSONResponse
from cogni_server.auth import Principal
from cogni_server.services import authz
from cogni_server.services import store as store_service
from cogni_server.services.run_request import Json, Strict

router = APIRouter(dependencies=[Depends(principal)], tags=["store"])


class StorePutBody(Strict):
    namespace: list[str]
    key: str
    value: Json
    index: Any = None  # false | list of JSON paths | null (the configured fields); checked by the service
    ttl: Any = None  # minutes | null (no expiry); absent -> store.ttl.default_ttl; checked by the service


class StoreDeleteBody(Strict):
    namespace: list[str]
    key: str


class StoreSearchBody(Strict):
    namespace_prefix: list[str] | None = None
    filter: Json | None = None
    limit: int = 10
    offset: int = 0
    query: str | None = None
    refresh_ttl: bool | None = None


class StoreNamespacesBody(Strict):
    prefix: list[str] | None = None
    suffix: list[str] | None = None
    max_depth: int | None = None
    limit: int = 100
    offset: int = 0


@router.put("/store/items", status_code=204)
async def put_item(body: StorePutBody, request: Request, who: Principal = Depends(principal)) -> Response:
    given = body.model_fields_set
    options: dict[str, Any] = {}
    if "ttl" in given:
        options["ttl"] = body.ttl
    if "index" in given:
        options["index"] = body.index
    ctx, value = context(request), {"namespace": tuple(body.namespace), "key": body.key, "value": body.value}
    value["index"] = body.index
    namespace = await authz.store_namespace(ctx, who, "put", value) or []
    await store_service.put_item(ctx, who.tenant, namespace, body.key, body.value, **options)
    return Response(status_code=204)


@router.get("/store/items")
async def get_item(
    request: Request,
    key: str,
    namespace: str = "",
    refresh_ttl: bool | None = Query(default=None),
    who: Principal = Depends(principal),
) -> Response:
    ctx, labels = context(request), namespace.split(".") if namespace else []
    labels = await authz.store_namespace(ctx, who, "get", {"namespace": tuple(labels), "key": key}) or []
    item = await store_service.get_item(ctx, who.tenant, labels, key, refresh_ttl=refresh_ttl)
    return JSONResponse(item)


@router.delete("/store/items", status_code=204)
async def delete_item(body: StoreDeleteBody, request: Request, who: Principal = Depends(principal)) -> Response:
    ctx = context(request)
    namespace = await authz.store_namespace(ctx, who, "delete", {"namespace": tuple(body.namespace), "key": body.key})
    await store_service.delete_item(ctx, who.tenant, namespace or [], body.key)
    return Response(status_code=204)


@router.post("/store/items/search")
async def search_items(body: StoreSearchBody, request: Request, who: Principal = Depends(principal)) -> Response:
    ctx = context(request)
    value: dict[str, Any] = {"namespace": tuple(body.namespace_prefix or ()), "filter": body.filter}
    value.update(limit=body.limit, offset=body.offset, query=body.query)
    prefix = await authz.store_namespace(ctx, who, "search", value)
    items = await store_service.search_items(
        ctx,
        who.tenant,
        prefix or [],
        filter=body.filter,
        limit=body.limit,
        offset=body.offset,
        query=body.query,
        refresh_ttl=body.refresh_ttl,
    )
    return JSONResponse({"items": items})


@router.post("/store/namespaces")
async def list_namespaces(body: StoreNamespacesBody, request: Request, who: Principal = Depends(principal)) -> Response:
    ctx = context(request)
    value: dict[str, Any] = {"namespace": tuple(body.prefix) if body.prefix is not None else None}
    value.update(suffix=tuple(body.suffix) if body.suffix else None, max_depth=body.max_depth)
    value.update(limit=body.limit, offset=body.offset)
    prefix = await authz.store_namespace(ctx, who, "list_namespaces", value)
    namespaces = await store_service.list_namespaces(
        ctx,
        who.tenant,
        prefix=prefix,
        suffix=body.suffix,
        max_depth=body.max_depth,
        limit=body.limit,
        offset=body.offset,
    )
    return JSONResponse({"namespaces": namespaces})
