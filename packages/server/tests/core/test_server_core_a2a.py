"""A2A through the official ``a2a-sdk`` client against a real server process: the agent card per
assistant, ``message/send`` and ``message/stream``, ``tasks/get`` and ``tasks/cancel``, contexts as the
tenant's threads, and nothing of one tenant reachable by another."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from a2a.client import A2ACardResolver, Client, ClientConfig, ClientFactory
from a2a.client.errors import AgentCardResolutionError
from a2a.types.a2a_pb2 import (
    ROLE_USER,
    TASK_STATE_CANCELED,
    TASK_STATE_COMPLETED,
    TASK_STATE_INPUT_REQUIRED,
    TASK_STATE_SUBMITTED,
    TASK_STATE_WORKING,
    AgentCard,
    CancelTaskRequest,
    GetTaskRequest,
    Message,
    Part,
    SendMessageRequest,
    StreamResponse,
    Task,
)
from a2a.utils.errors import InvalidParamsError, TaskNotCancelableError, TaskNotFoundError
from google.protobuf.json_format import MessageToDict
from langgraph_sdk.client import LangGraphClient

from .conftest import KEY_A, KEY_B, Server


async def _card(http: httpx.AsyncClient, server: Server, assistant_id: str) -> AgentCard:
    resolver = A2ACardResolver(http, server.url)
    return await resolver.get_agent_card(f"/.well-known/agent-card.json?assistant_id={assistant_id}")


@asynccontextmanager
async def a2a_client(server: Server, api_key: str, assistant_id: str, *, streaming: bool) -> AsyncIterator[Client]:
    async with httpx.AsyncClient(headers={"x-api-key": api_key}, timeout=30) as http:
        card = await _card(http, server, assistant_id)
        client = ClientFactory(ClientConfig(streaming=streaming, httpx_client=http)).create(card)
        try:
            yield client
        finally:
            await client.close()


def _data(value: dict[str, Any]) -> Part:
    part = Part()
    part.data.struct_value.update(value)
    return part


def _message(*parts: Part, context_id: str | None = None) -> SendMessageRequest:
    msg = Message(role=ROLE_USER, message_id=str(uuid.uuid4()), parts=list(parts))
    if context_id:
        msg.context_id = context_id
    return SendMessageRequest(message=msg)


async def _send(client: Client, request: SendMessageRequest) -> Task:
    events = [event async for event in client.send_message(request)]
    assert len(events) == 1 and events[0].HasField("task")
    return events[0].task


def _text(task: Task) -> str:
    return "".join(part.text for artifact in task.artifacts for part in artifact.parts)


async def test_agent_card_describes_the_assistant(server: Server, client: LangGraphClient) -> None:
    created = await client.assistants.create("echo", name=f"card-{uuid.uuid4().hex[:6]}", description="echoes back")
    async with httpx.AsyncClient(headers={"x-api-key": KEY_A}, timeout=10) as http:
        card = await _card(http, server, created["assistant_id"])
        by_graph = await _card(http, server, "echo")
        missing = await http.get(f"{server.url}/.well-known/agent-card.json")
    assert card.name == created["name"] and card.description == "echoes back"
    assert card.capabilities.streaming
    [interface] = card.supported_interfaces
    assert interface.url == f"{server.url}/a2a/{created['assistant_id']}"
    assert interface.protocol_binding == "JSONRPC" and interface.protocol_version == "0.3.0"
    assert card.skills and "text/plain" in card.default_input_modes
    assert by_graph.name == "echo" and by_graph.supported_interfaces[0].url.startswith(f"{server.url}/a2a/")
    assert missing.status_code == 422 and "assistant_id" in missing.json()["detail"]


async def test_send_runs_the_graph_and_a_context_is_a_thread(server: Server, client: LangGraphClient) -> None:
    async with a2a_client(server, KEY_A, "echo", streaming=False) as a2a:
        first = await _send(a2a, _message(Part(text="hello a2a")))
        assert first.status.state == TASK_STATE_COMPLETED
        assert _text(first) == "echo: hello a2a"
        second = await _send(a2a, _message(Part(text="again"), context_id=first.context_id))
        assert second.context_id == first.context_id and second.id != first.id
        assert _text(second) == "echo: again"
        fetched = await a2a.get_task(GetTaskRequest(id=second.id))
    assert fetched.status.state == TASK_STATE_COMPLETED and _text(fetched) == "echo: again"
    # the context is the caller's thread: both turns are on it, and each task is one of its runs
    thread = await client.threads.get(first.context_id)
    values: Any = thread["values"]
    assert [m["content"] for m in values["messages"]] == ["hello a2a", "echo: hello a2a", "again", "echo: again"]
    assert values["count"] == 2
    runs = await client.runs.list(first.context_id)
    assert {r["run_id"] for r in runs} == {first.id, second.id}


async def test_data_parts_are_graph_input(server: Server) -> None:
    async with a2a_client(server, KEY_A, "custom", streaming=False) as a2a:
        task = await _send(a2a, _message(_data({"n": 2})))
    assert task.status.state == TASK_STATE_COMPLETED
    result = MessageToDict(task.artifacts[0].parts[0].data)  # no messages: the final state as data
    assert result["greeting"] == "hello"


async def test_stream_sends_the_task_then_its_progress(server: Server) -> None:
    async with a2a_client(server, KEY_A, "echo", streaming=True) as a2a:
        events: list[StreamResponse] = [e async for e in a2a.send_message(_message(Part(text="streamed")))]
    kinds = [e.WhichOneof("payload") for e in events]
    assert kinds[0] == "task" and events[0].task.status.state == TASK_STATE_SUBMITTED
    assert events[1].status_update.status.state == TASK_STATE_WORKING
    artifacts = [e.artifact_update for e in events if e.HasField("artifact_update")]
    assert artifacts and artifacts[-1].artifact.parts[0].text == "echo: streamed"
    last = events[-1].status_update
    assert last.status.state == TASK_STATE_COMPLETED
    assert {e.status_update.task_id for e in events if e.HasField("status_update")} == {events[0].task.id}


async def test_cancel_stops_a_running_task(server: Server) -> None:
    slow = _data({"delay": 0.3, "steps": 50})
    async with a2a_client(server, KEY_A, "slow", streaming=True) as a2a:
        stream = a2a.send_message(_message(slow))
        first = await anext(stream)
        task_id = first.task.id
        cancelled = await a2a.cancel_task(CancelTaskRequest(id=task_id))
        assert cancelled.status.state == TASK_STATE_CANCELED
        rest = [e async for e in stream]
        assert rest[-1].status_update.status.state == TASK_STATE_CANCELED
        with pytest.raises(TaskNotCancelableError):
            await a2a.cancel_task(CancelTaskRequest(id=task_id))
        assert (await a2a.get_task(GetTaskRequest(id=task_id))).status.state == TASK_STATE_CANCELED


async def test_another_tenant_reaches_no_task_context_or_assistant(server: Server, client: LangGraphClient) -> None:
    private = await client.assistants.create("echo", name=f"private-{uuid.uuid4().hex[:6]}")
    async with a2a_client(server, KEY_A, "echo", streaming=False) as a2a:
        task = await _send(a2a, _message(Part(text="tenant A only")))
    async with a2a_client(server, KEY_B, "echo", streaming=False) as other:
        with pytest.raises(TaskNotFoundError):
            await other.get_task(GetTaskRequest(id=task.id))
        with pytest.raises(TaskNotFoundError):
            await other.cancel_task(CancelTaskRequest(id=task.id))
        with pytest.raises(InvalidParamsError, match="not found"):
            await _send(other, _message(Part(text="let me in"), context_id=task.context_id))
    async with httpx.AsyncClient(headers={"x-api-key": KEY_B}, timeout=10) as http:
        with pytest.raises(AgentCardResolutionError) as refused:
            await _card(http, server, private["assistant_id"])
        assert refused.value.status_code == 404
        body = {"jsonrpc": "2.0", "id": 1, "method": "tasks/get", "params": {"id": task.id}}
        direct = await http.post(f"{server.url}/a2a/{private['assistant_id']}", json=body)
        assert direct.status_code == 404
    # tenant A's context is untouched by B's attempt
    thread = await client.threads.get(task.context_id)
    assert [m["content"] for m in thread["values"]["messages"]] == ["tenant A only", "echo: tenant A only"]  # type: ignore[index]


async def test_bad_requests_are_jsonrpc_errors(server: Server) -> None:
    def rpc(method: str, params: Any) -> dict[str, Any]:
        return {"jsonrpc": "2.0", "id": "r1", "method": method, "params": params}

    deep: Any = "bottom"
    for _ in range(150):
        deep = {"d": deep}
    deep_message = {"message": {"role": "user", "messageId": "m2", "parts": [{"kind": "data", "data": deep}]}}
    file_message = {
        "message": {
            "role": "user",
            "messageId": "m1",
            "parts": [{"kind": "file", "file": {"uri": "https://example.invalid/x.pdf"}}],
        }
    }
    async with httpx.AsyncClient(headers={"x-api-key": KEY_A}, timeout=10) as http:
        url = f"{server.url}/a2a/echo"
        file_part = (await http.post(url, json=rpc("message/send", file_message))).json()
        too_deep = (await http.post(url, json=rpc("message/send", deep_message))).json()
        unknown = (await http.post(url, json=rpc("tasks/explode", {}))).json()
        push = (await http.post(url, json=rpc("tasks/pushNotificationConfig/set", {}))).json()
        no_message = (await http.post(url, json=rpc("message/send", {}))).json()
        not_json = (await http.post(url, content=b"{nope", headers={"content-type": "application/json"})).json()
    async with httpx.AsyncClient(timeout=10) as anonymous_http:
        anonymous = await anonymous_http.post(url, json=rpc("tasks/get", {"id": "x"}))
    assert file_part["id"] == "r1" and file_part["error"]["code"] == -32005
    assert too_deep["error"]["code"] == -32602 and "nested" in too_deep["error"]["message"]
    assert unknown["error"]["code"] == -32601 and "tasks/explode" in unknown["error"]["message"]
    assert push["error"]["code"] == -32004
    assert no_message["error"]["code"] == -32602 and "message" in no_message["error"]["message"]
    assert not_json["error"]["code"] == -32700
    assert anonymous.status_code == 401


async def test_a_graph_interrupt_is_input_required(server: Server) -> None:
    async with a2a_client(server, KEY_A, "approval", streaming=False) as a2a:
        task = await _send(a2a, _message(_data({"request": "a refund"})))
    assert task.status.state == TASK_STATE_INPUT_REQUIRED
    question = MessageToDict(task.status.message.parts[0].data)
    assert question["interrupts"][0]["value"] == {"question": "approve a refund?"}


async def test_non_blocking_send_answers_at_once_and_the_task_is_polled(server: Server) -> None:
    async with httpx.AsyncClient(headers={"x-api-key": KEY_A}, timeout=30) as http:
        card = await _card(http, server, "slow")
        polling = ClientFactory(ClientConfig(streaming=False, polling=True, httpx_client=http)).create(card)
        task = await _send(polling, _message(_data({"delay": 0.2, "steps": 5})))
        assert task.status.state in (TASK_STATE_SUBMITTED, TASK_STATE_WORKING)
        for _ in range(100):
            polled = await polling.get_task(GetTaskRequest(id=task.id))
            if polled.status.state == TASK_STATE_COMPLETED:
                break
            await asyncio.sleep(0.1)
        assert polled.status.state == TASK_STATE_COMPLETED
        assert MessageToDict(polled.artifacts[0].parts[0].data)["done"] == [0, 1, 2, 3, 4]
        await polling.close()


async def test_a_long_blocking_send_survives_keep_alives(server: Server) -> None:
    # longer than the server's heartbeat (0.5 s here): the answer is preceded by whitespace keep-alives
    async with a2a_client(server, KEY_A, "slow", streaming=False) as a2a:
        task = await _send(a2a, _message(_data({"delay": 0.4, "steps": 4})))
    assert task.status.state == TASK_STATE_COMPLETED
    assert MessageToDict(task.artifacts[0].parts[0].data)["done"] == [0, 1, 2, 3]
