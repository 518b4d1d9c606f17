"""`GET /v1/agents`: the graphs the calling account may name as `graphId`, from the providers that run them.

503 `agents_unavailable` when a provider could not list its graphs (see errors.py): the body names each
unlisted namespace and why, and carries the agents the other providers did list.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from cogni_app.api.deps import Principal, Runtime
from cogni_app.api.encode import agent_body

router = APIRouter()


@router.get("/v1/agents")
async def list_agents(runtime: Runtime, principal: Principal) -> dict[str, Any]:
    listed = await runtime.services.agents.list_agents(principal.billing_account_id)
    return {"agents": [agent_body(a) for a in listed.agents], "defaultAgentId": listed.default_agent_id}
