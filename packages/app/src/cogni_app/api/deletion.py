"""Data deletion routes (docs/compliance.md, `# The app`): the user asks with their API key, an operator
with the admin token; both start the account's one tracked job. Its status is read with the API key, or,
once the job has removed the account's keys, with the status token the request answered with."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from cogni_app.api.deps import Principal, Runtime, bearer_token
from cogni_app.deletion import STATUS_TOKEN_PREFIX, DeletionRecord
from cogni_app.services import DeletionStarted

router = APIRouter()
admin_router = APIRouter()
"""Mounted under the operator router (/v1/admin, COGNI_ADMIN_TOKEN) by api/admin.py."""


def deletion_body(record: DeletionRecord) -> dict[str, Any]:
    return {
        "billingAccountId": record.billing_account_id,
        "status": record.status,
        "requestedBy": record.requested_by,
        "requestedAt": record.requested_at.isoformat(),
        "completedAt": record.completed_at.isoformat() if record.completed_at else None,
        "steps": record.steps,
        "passes": record.passes,
        "lastError": record.last_error,
    }


def started_response(started: DeletionStarted) -> JSONResponse:
    """202 with the job; its status token only when the job is new (shown this once)."""
    body = deletion_body(started.record)
    if started.status_token is not None:
        body["statusToken"] = started.status_token
    return JSONResponse(body, status_code=202)


@router.delete("/v1/account/data", status_code=202)
async def delete_my_data(runtime: Runtime, principal: Principal) -> JSONResponse:
    """Delete the calling account's data: its API keys stop working now, the job runs on (202)."""
    started = await runtime.services.deletion.request(principal.billing_account_id, requested_by="user")
    return started_response(started)


@router.get("/v1/account/data/deletion")
async def my_deletion(request: Request, runtime: Runtime) -> dict[str, Any]:
    """The job's status: `Authorization: Bearer <API key>` or `Bearer <status token>` (cogni_del_...)."""
    token = bearer_token(request)
    if token.startswith(STATUS_TOKEN_PREFIX):
        record = await runtime.services.deletion.status_by_token(token)
    else:
        principal = await runtime.services.accounts.authenticate(token)
        record = await runtime.services.deletion.status(principal.billing_account_id)
    return deletion_body(record)


@admin_router.delete("/accounts/{account_id}/data", status_code=202)
async def delete_account_data(account_id: str, runtime: Runtime) -> JSONResponse:
    """An operator deletes an account's data (a finished job runs again: late rows are caught)."""
    started = await runtime.services.deletion.request(account_id, requested_by="operator")
    return started_response(started)


@admin_router.get("/accounts/{account_id}/data/deletion")
async def account_deletion(account_id: str, runtime: Runtime) -> dict[str, Any]:
    return deletion_body(await runtime.services.deletion.status(account_id))
