"""Tool policy and execution: a tool runs only when the run config allows it.

Allowed ids come from `GraphRunConfig.tool_ids_for(node)` (`<node>__toolIds`, else `toolIds`):
None means the catalog's tools for the graph, `[]` denies all. A call that is not allowed, names an
unknown tool, has bad arguments or fails answers with a JSON error object as its ToolMessage (so the
model and the UI see why) instead of running. Every ToolMessage keeps the model's own tool call id.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from langchain_core.messages import AIMessage, ToolCall, ToolMessage
from langchain_core.runnables import RunnableConfig
from pydantic import ValidationError

from cogni_graphs.catalog import catalog_entry
from cogni_graphs.run_config import run_config_of
from cogni_graphs.state import ChatState, GraphNode
from cogni_graphs.tools.errors import ToolArgumentError
from cogni_graphs.tools.registry import TOOLS

log = logging.getLogger(__name__)
POLICY_DENIED = "policy_denied"


def allowed_tool_ids(config: RunnableConfig | None, *, graph: str, node: str) -> frozenset[str]:
    """The tool ids `node` of `graph` may run in this run (never more than the catalog gives the graph)."""
    catalog_tools = frozenset(catalog_entry(graph).tool_ids)
    allowed = run_config_of(config).tool_ids_for(node)
    return catalog_tools if allowed is None else frozenset(allowed) & catalog_tools


def _error(code: str, message: str) -> dict[str, Any]:
    return {"error": code, "message": message}


async def run_tool_call(call: ToolCall, allowed: frozenset[str]) -> ToolMessage:
    """Run one tool call under the policy; always answers with a ToolMessage carrying the call's id."""
    name, call_id = call["name"], call["id"] or ""
    status = "error"
    if name not in TOOLS:
        result = _error("unknown_tool", f"no tool named {name!r}")
    elif name not in allowed:
        result = _error(POLICY_DENIED, f"tool {name!r} is not allowed in this run")
    else:
        try:
            result = await TOOLS[name].ainvoke(call["args"])
            status = "success"
        except (ToolArgumentError, ValidationError) as exc:
            result = _error("invalid_arguments", str(exc))
        except Exception as exc:
            log.exception("tool %s failed", name)
            result = _error("tool_failed", f"{type(exc).__name__}: {exc}")
    return ToolMessage(
        content=json.dumps(result, separators=(",", ":"), default=str),
        tool_call_id=call_id,
        name=name,
        status=status,
    )


def tools_node(*, graph: str, node: str = "tools") -> GraphNode:
    """A graph node that answers every tool call of the last AI message, concurrently, in call order."""

    async def run_tools(state: ChatState, config: RunnableConfig) -> dict[str, Any]:
        last = state["messages"][-1]
        calls = last.tool_calls if isinstance(last, AIMessage) else []
        allowed = allowed_tool_ids(config, graph=graph, node=node)
        results = await asyncio.gather(*(run_tool_call(call, allowed) for call in calls))
        return {"messages": list(results)}

    run_tools.__name__ = f"{graph}_{node}"
    return run_tools
