"""Read-only operator JSON for the console (and a sweep on demand), bearer COGNI_ADMIN_TOKEN.

Lists are paged with `limit` (1-200) and `offset` and answer `{items, total, limit, offset}`.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from cogni_app.api.deletion import deletion_body, started_response
from cogni_app.api.deps import Operator, Runtime
from cogni_app.api.encode import jsonable
from cogni_app.api.errors import ApiError
from cogni_app.billing.reads import Page

router = APIRouter(prefix="/console/api", dependencies=[Operator], tags=["console"])

Limit = Annotated[int, Query(ge=1, le=200)]
Offset = Annotated[int, Query(ge=0)]
ProvenanceFilter = Literal["response", "stream", "reconcile"]
DeletionStatusFilter = Literal["in_progress", "done"]


class StartDeletion(BaseModel):
    """`confirm` repeats `accountId`: the page makes the operator type it, the route checks it."""

    model_config = ConfigDict(extra="forbid", alias_generator=to_camel, populate_by_name=True)
    account_id: str = Field(min_length=1, max_length=200)
    confirm: str = Field(max_length=200)


def _paged(page: Page, limit: int, offset: int) -> dict[str, Any]:
    return {"items": jsonable(page.items), "total": page.total, "limit": limit, "offset": offset}


def _blank_is_none(value: str | None) -> str | None:
    return value.strip() or None if value is not None else None


@router.get("/config")
async def config(runtime: Runtime, tenant: Annotated[str | None, Query(max_length=200)] = None) -> dict[str, Any]:
    """The Agent Server's address and, for `tenant` (a billing account), a short-lived bearer token."""
    access = await runtime.services.console.server_access(_blank_is_none(tenant))
    return {
        "serverUrl": access.server_url,
        "tenant": access.tenant,
        "serverToken": access.token,
        "expiresAt": access.expires_at,
    }


@router.get("/overview")
async def overview(runtime: Runtime) -> dict[str, Any]:
    return jsonable(await runtime.services.console.overview())


@router.get("/accounts")
async def accounts(
    runtime: Runtime,
    q: Annotated[str | None, Query(max_length=200)] = None,
    balance: Literal["negative", "positive"] | None = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> dict[str, Any]:
    """`q`: part of the name or the exact id; `balance`: `negative` (accounts in debt) or `positive`."""
    page = await runtime.services.console.accounts(q=_blank_is_none(q), balance=balance, limit=limit, offset=offset)
    return _paged(page, limit, offset)


@router.get("/accounts/{account_id}")
async def account(account_id: str, runtime: Runtime) -> dict[str, Any]:
    return jsonable(await runtime.services.console.account(account_id))


@router.get("/accounts/{account_id}/receipts")
async def receipts(
    account_id: str,
    runtime: Runtime,
    provenance: ProvenanceFilter | None = None,
    run_id: Annotated[str | None, Query(alias="runId", max_length=200)] = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> dict[str, Any]:
    page = await runtime.services.console.receipts(
        account_id, provenance=provenance, run_id=_blank_is_none(run_id), limit=limit, offset=offset
    )
    return _paged(page, limit, offset)


@router.get("/accounts/{account_id}/ledger")
async def ledger(
    account_id: str,
    runtime: Runtime,
    reason: Annotated[str | None, Query(max_length=100)] = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> dict[str, Any]:
    page = await runtime.services.console.ledger(account_id, reason=_blank_is_none(reason), limit=limit, offset=offset)
    return _paged(page, limit, offset)


@router.get("/reconcile")
async def reconcile_status(runtime: Runtime) -> dict[str, Any]:
    return jsonable(runtime.services.console.reconcile_status())


@router.post("/reconcile/run")
async def reconcile_now(runtime: Runtime) -> dict[str, Any]:
    """Sweep the spend log now (as the periodic job does) and answer the sweep's report."""
    return jsonable(await runtime.services.console.reconcile_now())


@router.get("/deletions")
async def deletions(
    runtime: Runtime,
    status: DeletionStatusFilter | None = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> dict[str, Any]:
    """Data-deletion jobs, newest request first: steps with their counts, who asked, passes, last error."""
    page = await runtime.services.console.deletions(status=status, limit=limit, offset=offset)
    return {"items": [deletion_body(r) for r in page.items], "total": page.total, "limit": limit, "offset": offset}


@router.post("/deletions", status_code=202)
async def start_deletion(body: StartDeletion, runtime: Runtime) -> JSONResponse:
    """The operator deletes an account's data (as DELETE /v1/admin/accounts/{id}/data), once confirmed."""
    if body.confirm != body.account_id:
        raise ApiError(400, "invalid_request", "confirm must repeat accountId exactly to start its data deletion")
    return started_response(await runtime.services.deletion.request(body.account_id, requested_by="operator"))
