"""Account-facing read routes: the model list and the account's activity."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from cogni_app.api import deletion
from cogni_app.api.deps import Principal, Runtime
from cogni_app.api.encode import jsonable

router = APIRouter()


@router.get("/v1/models")
async def list_models(runtime: Runtime, _: Principal) -> dict[str, Any]:
    """LiteLLM's aliases the app allows, with the default the app picks when none is requested."""
    menu = runtime.services.accounts.models()
    return {
        "models": [
            {"id": m.id, "displayName": m.display_name, "isFree": m.is_free, "isDefault": m.is_default}
            for m in menu.models
        ],
        "defaultModelId": menu.default.id,
    }


@router.get("/v1/activity")
async def activity(
    runtime: Runtime, principal: Principal, limit: Annotated[int, Query(ge=1, le=500)] = 50
) -> dict[str, Any]:
    """The calling account's runs, newest first: LLM calls, tokens, cost (USD after markup), credits."""
    found = await runtime.services.accounts.activity(principal.billing_account_id, limit=limit)
    return {
        "billingAccountId": found.billing_account_id,
        "balanceCredits": found.balance_credits,
        "runs": jsonable(found.runs),
    }


router.include_router(deletion.router)  # the account's data deletion (api/deletion.py)
