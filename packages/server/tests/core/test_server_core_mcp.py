"""``/mcp`` through the official ``mcp`` client (streamable HTTP) against a real server process: the
caller's assistants are its tools, a call runs the graph as the caller, and tenants never see each
other's assistants."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import httpx2
import mcp_types as types
import pytest
from langgraph_sdk.client import LangGraphClient
from mcp.client.session import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

from .conftest import KEY_A, KEY_B, Server


@asynccontextmanager
async def mcp_session(server: Server, api_key: str) -> AsyncIterator[ClientSession]:
    async with (
        httpx2.AsyncClient(headers={"x-api-key": api_key}, timeout=30) as http,
        streamable_http_client(f"{server.url}/mcp", http_client=http) as (read, write),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        yield session


def _tools(result: types.ListToolsResult) -> dict[str, types.Tool]:
    return {tool.name: tool for tool in result.tools}


async def test_graphs_are_tools_with_their_input_schema(server: Server) -> None:
    async with mcp_session(server, KEY_A) as session:
        tools = _tools(await session.list_tools())
    assert {"echo", "chat", "slow"} <= set(tools)
    echo = tools["echo"]
    assert echo.input_schema["type"] == "object"
    assert {"messages", "count"} <= set(echo.input_schema["properties"])
    assert echo.description  # every tool says what it runs


async def test_calling_a_tool_runs_the_graph_and_returns_its_output(server: Server, client: LangGraphClient) -> None:
    async with mcp_session(server, KEY_A) as session:
        result = await session.call_tool("echo", {"messages": [{"role": "user", "content": "over mcp"}]})
    assert not result.is_error
    output: Any = result.structured_content
    assert output["messages"][-1]["content"] == "echo: over mcp"
    assert output["count"] == 1
    assert "echo: over mcp" in result.content[0].text  # type: ignore[union-attr]


async def test_a_failing_graph_is_a_tool_error_not_a_protocol_error(server: Server) -> None:
    async with mcp_session(server, KEY_A) as session:
        result = await session.call_tool("failing", {})
    assert result.is_error
    assert "boom: the fixture graph failed on purpose" in result.content[0].text  # type: ignore[union-attr]


async def test_arguments_the_server_cannot_store_are_a_tool_error(server: Server) -> None:
    deep: Any = "bottom"
    for _ in range(150):
        deep = {"d": deep}
    async with mcp_session(server, KEY_A) as session:
        result = await session.call_tool("echo", {"messages": [], "extra": deep})
    assert result.is_error
    assert "nested more than" in result.content[0].text  # type: ignore[union-attr]


async def test_tenants_see_and_call_only_their_own_assistants(
    server: Server, client: LangGraphClient, client_b: LangGraphClient
) -> None:
    name = f"private-{uuid.uuid4().hex[:8]}"
    mine = await client.assistants.create("echo", name=name, description="tenant A's own echo")
    async with mcp_session(server, KEY_A) as session:
        tools_a = _tools(await session.list_tools())
        assert tools_a[name].description == "tenant A's own echo"
        called = await session.call_tool(name, {"messages": [{"role": "user", "content": "mine"}]})
        assert called.structured_content["messages"][-1]["content"] == "echo: mine"  # type: ignore[index]
    async with mcp_session(server, KEY_B) as session:
        tools_b = _tools(await session.list_tools())
        assert name not in tools_b
        assert "echo" in tools_b  # the graphs' own assistants are everyone's
        with pytest.raises(MCPError, match="unknown tool"):
            await session.call_tool(name, {"messages": [{"role": "user", "content": "theirs"}]})
    # and through the API B cannot find the assistant either (the tool list and the API agree)
    seen_by_b = await client_b.assistants.search(graph_id="echo", limit=1000)
    assert mine["assistant_id"] not in {a["assistant_id"] for a in seen_by_b}


async def test_mcp_requires_the_servers_auth(server: Server) -> None:
    async with httpx.AsyncClient(timeout=10) as http:
        body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
        headers = {"accept": "application/json, text/event-stream"}
        missing = await http.post(f"{server.url}/mcp", json=body, headers=headers)
        wrong = await http.post(f"{server.url}/mcp", json=body, headers={**headers, "x-api-key": "not-a-key"})
    assert missing.status_code == 401 and wrong.status_code == 401
    assert "detail" in missing.json()


async def test_tool_names_are_mcp_safe_and_unique(server: Server, client: LangGraphClient) -> None:
    tag = uuid.uuid4().hex[:6]
    first = await client.assistants.create("echo", name=f"Twin bot {tag}!")
    second = await client.assistants.create("chat", name=f"Twin bot {tag}!")
    async with mcp_session(server, KEY_A) as session:
        tools = _tools(await session.list_tools())
        base = f"Twin_bot_{tag}_"
        suffixed = base + "_" + second["assistant_id"].replace("-", "")[:8]
        assert {base, suffixed} <= set(tools)
        assert "messages" in tools[suffixed].input_schema["properties"]
        echoed = await session.call_tool(base, {"messages": [{"role": "user", "content": "which one?"}]})
        chatted = await session.call_tool(suffixed, {"messages": [{"role": "user", "content": "which one?"}]})
    assert echoed.structured_content["messages"][-1]["content"] == "echo: which one?"  # type: ignore[index]
    assert chatted.structured_content["messages"][-1]["content"] == "the quick brown fox"  # type: ignore[index]
    assert first["assistant_id"] != second["assistant_id"]
