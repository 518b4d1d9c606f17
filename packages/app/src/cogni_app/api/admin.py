"""Operator routes under /v1/admin (bearer COGNI_ADMIN_TOKEN): accounts, credits, API keys, receipts.

An unknown account is 404 and a grant the ledger refuses (amount 0, ...) is 400, both via errors.py.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from cogni_app.api import deletion, keys, llm_keys
from cogni_app.api.deps import Operator, Runtime
from cogni_app.api.encode import jsonable

router = APIRouter(prefix="/v1/admin", dependencies=[Operator])


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", alias_generator=to_camel, populate_by_name=True)


class CreateAccount(_Body):
    name: Annotated[str, Field(min_length=1, max_length=200)]
    initial_credits: Annotated[int, Field(ge=0)] = 0


class GrantCredits(_Body):
    amount: int = Field(description="credits to add (negative to remove); never 0 (the ledger refuses it: 400)")
    reason: Annotated[str, Field(min_length=1, max_length=100)] = "grant"
    reference: Annotated[str, Field(min_length=1, max_length=200)] | None = None


class CreateApiKey(_Body):
    label: Annotated[str, Field(min_length=1, max_length=100)] = "default"


@router.post("/accounts", status_code=201)
async def create_account(body: CreateAccount, runtime: Runtime) -> dict[str, Any]:
    account = await runtime.services.operator.create_account(body.name, initial_credits=body.initial_credits)
    return {"id": account.id, "name": account.name, "balanceCredits": account.balance_credits}


@router.get("/accounts/{account_id}")
async def get_account(account_id: str, runtime: Runtime) -> dict[str, Any]:
    account = await runtime.services.operator.account(account_id)
    return {"id": account.id, "name": account.name, "balanceCredits": account.balance_credits}


@router.get("/accounts/{account_id}/balance")
async def balance(account_id: str, runtime: Runtime) -> dict[str, Any]:
    return {"id": account_id, "balanceCredits": await runtime.services.operator.balance(account_id)}


@router.post("/accounts/{account_id}/credits")
async def grant_credits(account_id: str, body: GrantCredits, runtime: Runtime) -> dict[str, Any]:
    grant = await runtime.services.operator.grant_credits(
        account_id, body.amount, reason=body.reason, reference=body.reference
    )
    return {"id": account_id, "balanceCredits": grant.balance_credits, "reference": grant.reference}


@router.post("/accounts/{account_id}/api-keys", status_code=201)
async def create_api_key(account_id: str, body: CreateApiKey, runtime: Runtime, response: Response) -> dict[str, Any]:
    """A new virtual key and an API key on it; the plaintext key is shown this once only."""
    issued = await runtime.services.operator.issue_api_key(account_id, body.label)
    response.headers.update(keys.NO_STORE)
    vkey = issued.virtual_key
    return {"billingAccountId": account_id, "virtualKeyId": vkey.id, "label": vkey.label, "apiKey": issued.api_key}


@router.get("/runs/{run_id}/receipts")
async def run_receipts(run_id: str, runtime: Runtime) -> dict[str, Any]:
    return {"runId": run_id, "receipts": jsonable(await runtime.services.operator.run_receipts(run_id))}


@router.post("/runs/{run_id}/reconcile")
async def reconcile_run(
    run_id: str, runtime: Runtime, account_id: Annotated[str, Query(alias="accountId")]
) -> dict[str, Any]:
    """Bill now whatever of this run the spend log has and the ledger lacks (idempotent)."""
    created = await runtime.services.operator.reconcile_run(account_id, run_id)
    return {"runId": run_id, "created": created}


router.include_router(deletion.admin_router)  # an account's data deletion by an operator (api/deletion.py)
router.include_router(keys.admin_router)  # list, revoke, rotate API keys (api/keys.py)
router.include_router(llm_keys.admin_router)  # list, mint, rotate, revoke LiteLLM keys (api/llm_keys.py)
