"""Use-case results -> the API's camelCase JSON and headers (Decimals as strings, so no cost is rounded)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from pydantic.alias_generators import to_camel

from cogni_app.executors import RoutedAgent
from cogni_app.services import RunIds


def jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {to_camel(str(k)): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, UUID):
        return str(value)
    return value


def run_headers(ids: RunIds) -> dict[str, str]:
    """The headers that name a chat run, on its stream and on a refusal after the ids were minted."""
    return {
        "X-State-Key": ids.state_key,
        "X-Run-Id": ids.run_id,
        "X-Request-Id": ids.request_id,
        "X-Trace-Id": ids.trace_id,
    }


def agent_body(agent: RoutedAgent) -> dict[str, Any]:
    d = agent.descriptor
    return {
        "id": agent.graph_id,
        "displayName": d.display_name,
        "description": d.description,
        "tools": list(d.tool_ids),
    }
