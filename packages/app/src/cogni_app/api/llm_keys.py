"""The operator's LLM-key routes (docs/compliance.md, "Key lifecycle"), mounted under /v1/admin (bearer
COGNI_ADMIN_TOKEN) by api/admin.py: list an account's LiteLLM keys (no secret, no hash), mint, rotate, revoke.

An unknown account or key id is 404, minting beside an active key or rotating a revoked one 409, no
COGNI_LLM_KEY_SECRET 503 (errors.py).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Response
from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from cogni_app.api.deps import Runtime
from cogni_app.billing import LlmKeyRecord

admin_router = APIRouter()
NO_STORE = {"Cache-Control": "no-store"}


class MintLlmKey(BaseModel):
    model_config = ConfigDict(extra="forbid", alias_generator=to_camel, populate_by_name=True)

    rpm_limit: Annotated[int, Field(gt=0)] | None = None
    tpm_limit: Annotated[int, Field(gt=0)] | None = None


def llm_key_body(key: LlmKeyRecord) -> dict[str, Any]:
    """A key as the API and `cogni-app llm-keys` show it: never the key or its hash."""
    return {
        "id": key.id,
        "billingAccountId": key.billing_account_id,
        "keyPrefix": key.prefix,
        "keyAlias": f"llm-key:{key.id}",
        "rpmLimit": key.rpm_limit,
        "tpmLimit": key.tpm_limit,
        "replaces": key.replaces,
        "createdAt": key.created_at.isoformat(),
        "revokedAt": key.revoked_at.isoformat() if key.revoked_at else None,
    }


@admin_router.get("/accounts/{account_id}/llm-keys")
async def list_llm_keys(account_id: str, runtime: Runtime) -> dict[str, Any]:
    keys = await runtime.services.llm_keys.list_keys(account_id)
    return {"billingAccountId": account_id, "llmKeys": [llm_key_body(k) for k in keys]}


@admin_router.post("/accounts/{account_id}/llm-keys", status_code=201)
async def mint_llm_key(
    account_id: str, runtime: Runtime, response: Response, body: MintLlmKey | None = None
) -> dict[str, Any]:
    """A new key for the account, shown this once."""
    limits = body or MintLlmKey()
    issued = await runtime.services.llm_keys.mint(account_id, rpm_limit=limits.rpm_limit, tpm_limit=limits.tpm_limit)
    response.headers.update(NO_STORE)
    return {**llm_key_body(issued.key), "llmKey": issued.llm_key}


@admin_router.post("/llm-keys/{key_id}/rotate", status_code=201)
async def rotate_llm_key(key_id: str, runtime: Runtime, response: Response) -> dict[str, Any]:
    """The key revoked and its successor minted at once; the new key shown this once."""
    issued = await runtime.services.llm_keys.rotate(key_id)
    response.headers.update(NO_STORE)
    return {**llm_key_body(issued.key), "llmKey": issued.llm_key}


@admin_router.post("/llm-keys/{key_id}/revoke")
async def revoke_llm_key(key_id: str, runtime: Runtime) -> dict[str, Any]:
    return llm_key_body(await runtime.services.llm_keys.revoke(key_id))
