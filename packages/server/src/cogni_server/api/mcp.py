"""``/mcp``: the Model Context Protocol over streamable HTTP, served by the official ``mcp`` package.

Stateless (no MCP session is kept between requests, so any server process can answer any request),
JSON responses. Every request is authenticated first with the server's normal auth (the same API key
or JWT headers as the rest of the API); the caller's principal rides on the ASGI scope to the MCP
handlers, which list and call the tenant's assistants through ``services.mcp_tools``. So does the caller's
per-account LLM key (``X-Cogni-LLM-Key``, checked first as on run creation: 422, 403), which each tool call's
run gets.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import mcp_types as types
from fastapi import FastAPI, HTTPException, Request
from mcp.server import Server, ServerRequestContext
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.shared.exceptions import MCPError
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from cogni_ai_core import LLM_KEY_HEADER
from cogni_server.api.context import context, principal
from cogni_server.api.errors import status_of
from cogni_server.api.responses import JSONResponse
from cogni_server.auth import AuthError, Principal
from cogni_server.errors import DomainError, NotFound
from cogni_server.services import mcp_tools, protocol_authz, run_keys
from cogni_server.services.context import ServerContext

MCP_PATH = "/mcp"
_PRINCIPAL = "cogni.principal"  # ASGI scope key: who the MCP request was authenticated as
_LLM_KEY = "cogni.llm_key"  # ASGI scope key: the caller's checked per-account LLM key, if it sent one


def _caller(rctx: ServerRequestContext[Any, Any]) -> tuple[ServerContext, Principal]:
    request = rctx.request
    if not isinstance(request, Request) or not isinstance(request.scope.get(_PRINCIPAL), Principal):
        raise MCPError(types.INTERNAL_ERROR, "MCP request reached a handler without an authenticated caller")
    return context(request), request.scope[_PRINCIPAL]


async def _list_tools(
    rctx: ServerRequestContext[Any, Any], params: types.PaginatedRequestParams | None
) -> types.ListToolsResult:
    ctx, who = _caller(rctx)
    try:
        metadata, possible = await protocol_authz.tool_filter(ctx, who)  # custom auth's assistants.search
    except AuthError as exc:
        raise MCPError(types.INVALID_REQUEST, exc.message) from None
    tools = await mcp_tools.list_tools(ctx, who.tenant, metadata=metadata) if possible else []
    return types.ListToolsResult(
        tools=[types.Tool(name=t.name, description=t.description, input_schema=t.input_schema) for t in tools]
    )


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)


async def _call_tool(rctx: ServerRequestContext[Any, Any], params: types.CallToolRequestParams) -> types.CallToolResult:
    ctx, who = _caller(rctx)
    try:
        metadata, possible = await protocol_authz.tool_filter(ctx, who)
        if not possible:
            raise NotFound(f"unknown tool {params.name!r}")
        tool = await mcp_tools.find_tool(ctx, who.tenant, params.name, metadata=metadata)
        await protocol_authz.may_call_tool(ctx, who, tool.assistant_id)  # custom auth's threads.create_run
        llm_key = rctx.request.scope.get(_LLM_KEY) if isinstance(rctx.request, Request) else None
        outcome = await mcp_tools.call_tool(ctx, who.tenant, tool, params.arguments, llm_key=llm_key)
    except AuthError as exc:  # refused by the project's auth handlers: the model sees why
        return types.CallToolResult(content=[types.TextContent(text=exc.message)], is_error=True)
    except NotFound as exc:  # not a tool of this caller: a protocol error, as the spec asks
        raise MCPError(types.INVALID_PARAMS, str(exc)) from None
    except DomainError as exc:  # the run was refused (bad input, ...): the model should see why
        return types.CallToolResult(content=[types.TextContent(text=str(exc))], is_error=True)
    structured = outcome.output if isinstance(outcome.output, dict) and not outcome.is_error else None
    return types.CallToolResult(
        content=[types.TextContent(text=_text(outcome.output))],
        structured_content=structured,
        is_error=outcome.is_error,
    )


def build_server() -> Server[Any]:
    """The MCP server: tools only (one per assistant), no resources or prompts."""
    return Server(
        "cogni-agent-server",
        version="0.1.0",
        instructions="Each tool runs one assistant of this Agent Server and returns the graph's final state.",
        on_list_tools=_list_tools,
        on_call_tool=_call_tool,
    )


class McpEndpoint:
    """The ASGI app behind ``/mcp``: authenticate, then hand the request to the MCP session manager."""

    def __init__(self) -> None:
        self.manager = StreamableHTTPSessionManager(build_server(), stateless=True, json_response=True)

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """The session manager's task group, for the app's lifespan."""
        async with self.manager.run():
            yield

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        try:
            scope[_PRINCIPAL] = who = await principal(request)
        except HTTPException as exc:
            await JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers)(
                scope, receive, send
            )
            return
        try:
            scope[_LLM_KEY] = run_keys.accept_llm_key(context(request), request.headers.get(LLM_KEY_HEADER), who.tenant)
        except DomainError as exc:  # names the header, never the key
            await JSONResponse({"detail": str(exc)}, status_code=status_of(exc))(scope, receive, send)
            return
        await self.manager.handle_request(scope, receive, send)


def mount(app: FastAPI) -> McpEndpoint:
    """Serve ``/mcp`` on ``app``; the caller runs ``endpoint.running()`` in the app's lifespan."""
    endpoint = McpEndpoint()
    app.router.routes.append(Route(MCP_PATH, endpoint=endpoint, methods=["GET", "POST", "DELETE"]))
    return endpoint
