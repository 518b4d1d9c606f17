"""Operator routes: purge a tenant, read a purge's status (docs/compliance.md).

They answer only to ``Authorization: Bearer <COGNI_OPERATOR_TOKEN>``, never to a tenant's
credential; with no token configured they do not exist (404), a wrong or missing one is a 401.
"""

from __future__ import annotations

import hashlib
import hmac

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import Response

from cogni_server.api.context import context
from cogni_server.api.responses import JSONResponse
from cogni_server.services import purge as purge_service


async def operator(request: Request) -> None:
    """FastAPI dependency: the caller presents the operator token (compared in constant time)."""
    token = context(request).settings.operator_token
    if not token:
        raise HTTPException(status_code=404, detail="Not Found")
    scheme, _, presented = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not presented.strip():
        raise HTTPException(
            status_code=401,
            detail="operator routes need 'Authorization: Bearer <COGNI_OPERATOR_TOKEN>'",
            headers={"WWW-Authenticate": "Bearer"},
        )
    digest = hashlib.sha256(presented.strip().encode()).digest()
    if not hmac.compare_digest(digest, hashlib.sha256(token.encode()).digest()):
        raise HTTPException(status_code=401, detail="invalid operator token", headers={"WWW-Authenticate": "Bearer"})


router = APIRouter(prefix="/admin", dependencies=[Depends(operator)], tags=["admin"])


@router.post("/tenants/{tenant}/purge")
async def purge_tenant(tenant: str, request: Request) -> Response:
    """Delete every row and broker key of the tenant (one pass; ``in_progress`` if runs still stop)."""
    result = await purge_service.purge_tenant(context(request), tenant)
    return JSONResponse(result.to_json())


@router.get("/tenants/{tenant}/purge")
async def purge_status(tenant: str, request: Request) -> Response:
    """Where the tenant's purge stands (404 when it was never purged)."""
    result = await purge_service.purge_status(context(request), tenant)
    if result is None:
        raise HTTPException(status_code=404, detail=f"no purge of tenant {tenant!r} was ever requested")
    return JSONResponse(result.to_json())
