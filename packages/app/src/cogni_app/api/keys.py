"""The operator's API-key routes (docs/compliance.md, "Key lifecycle"), mounted under /v1/admin (bearer
COGNI_ADMIN_TOKEN) by api/admin.py: list an account's keys (no secret, no hash), revoke, rotate.

An unknown account or key id is 404, rotating a revoked key 409 (errors.py).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response

from cogni_app.api.deps import Runtime
from cogni_app.billing import ApiKeyRecord

admin_router = APIRouter()

NO_STORE = {"Cache-Control": "no-store"}
"""On an answer that carries a key: no cache on the way may keep it."""


def key_body(key: ApiKeyRecord) -> dict[str, Any]:
    """A key as the API and `cogni-app keys` show it: never the secret or its hash. Last use is not tracked."""
    return {
        "id": key.id,
        "label": key.label,
        "keyPrefix": key.prefix,
        "billingAccountId": key.billing_account_id,
        "virtualKeyId": key.virtual_key_id,
        "createdAt": key.created_at.isoformat(),
        "revokedAt": key.revoked_at.isoformat() if key.revoked_at else None,
    }


@admin_router.get("/accounts/{account_id}/api-keys")
async def list_api_keys(account_id: str, runtime: Runtime) -> dict[str, Any]:
    """The account's keys, revoked ones included, newest first."""
    keys = await runtime.services.keys.list_keys(account_id)
    return {"billingAccountId": account_id, "apiKeys": [key_body(k) for k in keys]}


@admin_router.post("/api-keys/{key_id}/revoke")
async def revoke_api_key(key_id: str, runtime: Runtime) -> dict[str, Any]:
    """Refused from the next request on (idempotent: revoking again keeps the first revocation time)."""
    return key_body(await runtime.services.keys.revoke(key_id))


@admin_router.post("/api-keys/{key_id}/rotate")
async def rotate_api_key(key_id: str, runtime: Runtime, response: Response) -> dict[str, Any]:
    """A new secret for the same key id and label, shown this once; the old secret is refused at once."""
    rotated = await runtime.services.keys.rotate(key_id)
    response.headers.update(NO_STORE)
    return {**key_body(rotated.key), "apiKey": rotated.api_key}
