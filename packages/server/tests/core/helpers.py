"""Small waits shared by the server-core tests (bounded, never open-ended)."""

from __future__ import annotations

import asyncio
from typing import Any

from langgraph_sdk.client import LangGraphClient


async def wait_status(
    client: LangGraphClient, thread_id: str, run_id: str, statuses: set[str], limit: float = 15.0
) -> dict[str, Any]:
    deadline = asyncio.get_running_loop().time() + limit
    while True:
        run = await client.runs.get(thread_id, run_id)
        if run["status"] in statuses:
            return dict(run)
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"run {run_id} still {run['status']} after {limit}s (wanted {statuses})")
        await asyncio.sleep(0.05)
