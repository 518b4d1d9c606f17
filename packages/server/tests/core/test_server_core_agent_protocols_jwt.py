"""MCP and A2A under service-JWT auth: the bearer token's ``sub`` is the tenant there too."""

from __future__ import annotations

import uuid

import httpx
import httpx2
import pytest
from a2a.client import A2ACardResolver, ClientConfig, ClientFactory
from a2a.types.a2a_pb2 import ROLE_USER, TASK_STATE_COMPLETED, GetTaskRequest, Message, Part, SendMessageRequest
from a2a.utils.errors import TaskNotFoundError
from mcp.client.session import ClientSession
from mcp.client.streamable_http import streamable_http_client

from testsupport import free_port, fresh_database

from .conftest import start_server
from .test_server_core_jwt import AUDIENCE, SECRET, token


def _bearer(sub: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token(sub)}"}


async def test_mcp_and_a2a_act_for_the_tokens_subject() -> None:
    with fresh_database("cogni_server_protocols_jwt") as db:
        port = free_port()
        proc = start_server(
            db, port, name="jwt-protocols", COGNI_AUTH_MODE="jwt", COGNI_JWT_SECRET=SECRET, COGNI_JWT_AUDIENCE=AUDIENCE
        )
        url = f"http://127.0.0.1:{port}"
        try:
            async with (
                httpx2.AsyncClient(headers=_bearer("alice"), timeout=30) as http2,
                streamable_http_client(f"{url}/mcp", http_client=http2) as (read, write),
                ClientSession(read, write) as session,
            ):
                await session.initialize()
                result = await session.call_tool("echo", {"messages": [{"role": "user", "content": "jwt"}]})
            assert result.structured_content["messages"][-1]["content"] == "echo: jwt"  # type: ignore[index]

            async with httpx.AsyncClient(headers=_bearer("alice"), timeout=30) as http:
                card = await A2ACardResolver(http, url).get_agent_card("/.well-known/agent-card.json?assistant_id=echo")
                alice = ClientFactory(ClientConfig(streaming=False, httpx_client=http)).create(card)
                msg = Message(role=ROLE_USER, message_id=str(uuid.uuid4()), parts=[Part(text="hi")])
                [event] = [e async for e in alice.send_message(SendMessageRequest(message=msg))]
                assert event.task.status.state == TASK_STATE_COMPLETED
            async with httpx.AsyncClient(headers=_bearer("bob"), timeout=30) as http:
                bob = ClientFactory(ClientConfig(streaming=False, httpx_client=http)).create(card)
                with pytest.raises(TaskNotFoundError):
                    await bob.get_task(GetTaskRequest(id=event.task.id))
            async with httpx.AsyncClient(timeout=10) as http:
                expired = {"Authorization": f"Bearer {token('alice', ttl=-60)}"}
                refused = await http.post(f"{url}/a2a/echo", json={}, headers=expired)
                assert refused.status_code == 401
        finally:
            proc.stop()
