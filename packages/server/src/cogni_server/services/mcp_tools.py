"""The caller's assistants as MCP tools: what ``tools/list`` shows and what ``tools/call`` runs.

Protocol-free on purpose (the ``mcp`` wire types live in ``api.mcp``): a tool is one assistant the
tenant can see (its own and the graphs' system assistants), named after the assistant, described by
it (or its graph), with the graph's input JSON schema as its arguments. A call is a stateless run of
that assistant created through ``services.runs.create_run`` (the path of ``POST /runs/wait``), so
tenant isolation, billing identity and the run queue apply to it as to any other run.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from cogni_server.errors import Invalid, NotFound
from cogni_server.graphs import GraphLoadError, GraphNotFound
from cogni_server.serde import TOO_DEEP, json_depth_exceeds
from cogni_server.services import runs as run_service
from cogni_server.services.context import ServerContext
from cogni_server.services.run_request import RunRequest
from cogni_server.storage import assistants as assistant_repo

MAX_TOOLS = 1000  # assistants listed as tools (oldest first); more than that is not a tool catalogue
_NAME_CHARS = re.compile(r"[^A-Za-z0-9_.-]")
_MAX_NAME = 64  # the limit most MCP clients put on tool names
_ANY_OBJECT: dict[str, Any] = {"type": "object", "additionalProperties": True}


@dataclass(frozen=True)
class GraphTool:
    """One assistant offered as an MCP tool."""

    name: str
    description: str
    input_schema: dict[str, Any]
    assistant_id: str
    graph_id: str


@dataclass(frozen=True)
class ToolOutcome:
    """What a tool call produced: the run's final values, or the run's error."""

    output: Any
    is_error: bool
    run_id: str


def tool_name(raw: str) -> str:
    """An MCP-safe tool name (letters, digits, ``_ . -``, at most 64 characters)."""
    cleaned = _NAME_CHARS.sub("_", raw.strip()) or "assistant"
    return cleaned[:_MAX_NAME]


def _input_schema(ctx: ServerContext, graph_id: str) -> dict[str, Any]:
    """The graph's input JSON schema, always an object schema (what MCP requires of a tool)."""
    try:
        schema = ctx.registry.schemas(graph_id).get("input_schema")
    except (GraphLoadError, GraphNotFound):
        schema = None
    if not isinstance(schema, dict) or schema.get("type") != "object":
        return dict(_ANY_OBJECT)
    return schema


def _describe(ctx: ServerContext, row: dict[str, Any]) -> str:
    graph_id = row["graph_id"]
    text = row.get("description")
    if not text and graph_id in ctx.registry:
        text = ctx.registry.description(graph_id)
    return str(text or f"Run the {graph_id!r} graph (assistant {row['assistant_id']}) and return its final state.")


async def list_tools(ctx: ServerContext, tenant: str, *, metadata: dict[str, Any] | None = None) -> list[GraphTool]:
    """The tenant's assistants (those whose metadata contains ``metadata``, custom auth's filter) as
    tools; a name two assistants share gets the later one's id appended."""
    async with ctx.pool.connection() as conn:
        rows, _ = await assistant_repo.search(
            conn,
            tenant,
            metadata=metadata,
            graph_id=None,
            name=None,
            limit=MAX_TOOLS,
            offset=0,
            sort_by="created_at",
            sort_order="asc",
        )
    tools: list[GraphTool] = []
    taken: set[str] = set()
    schemas: dict[str, dict[str, Any]] = {}  # one schema per graph, however many assistants use it
    for row in rows:
        if row["graph_id"] not in ctx.registry:  # an assistant of a graph this deployment no longer serves
            continue
        name = tool_name(str(row.get("name") or row["graph_id"]))
        if name in taken:
            suffix = "_" + str(row["assistant_id"]).replace("-", "")[:8]
            name = name[: _MAX_NAME - len(suffix)] + suffix
        taken.add(name)
        if row["graph_id"] not in schemas:
            schemas[row["graph_id"]] = _input_schema(ctx, row["graph_id"])
        tools.append(
            GraphTool(
                name=name,
                description=_describe(ctx, row),
                input_schema=schemas[row["graph_id"]],
                assistant_id=str(row["assistant_id"]),
                graph_id=row["graph_id"],
            )
        )
    return tools


async def find_tool(ctx: ServerContext, tenant: str, name: str, *, metadata: dict[str, Any] | None = None) -> GraphTool:
    """The tool called ``name`` among the tenant's; NotFound names it (another tenant's never match)."""
    for tool in await list_tools(ctx, tenant, metadata=metadata):
        if tool.name == name:
            return tool
    raise NotFound(f"unknown tool {name!r}: no assistant of yours has that name (list the tools first)")


async def call_tool(
    ctx: ServerContext,
    tenant: str,
    tool: GraphTool | str,
    arguments: dict[str, Any] | None,
    *,
    llm_key: str | None = None,
) -> ToolOutcome:
    """Run the tool's assistant once on a temporary thread with ``arguments`` as the graph input
    (and ``llm_key``, the caller's per-account LLM key, as the run's: ``services.run_keys``)."""
    if isinstance(tool, str):
        tool = await find_tool(ctx, tenant, tool)
    if json_depth_exceeds(arguments):
        raise Invalid(f"arguments: {TOO_DEEP}")
    request = RunRequest(assistant_id=tool.assistant_id, input=arguments or {})
    run = await run_service.create_run(ctx, tenant, None, request, kind="mcp", force_values=True, llm_key=llm_key)
    raw = await run_service.collect_output(ctx, str(run["run_id"]))
    output = json.loads(raw)
    is_error = isinstance(output, dict) and "__error__" in output
    return ToolOutcome(output=output["__error__"] if is_error else output, is_error=is_error, run_id=str(run["run_id"]))
