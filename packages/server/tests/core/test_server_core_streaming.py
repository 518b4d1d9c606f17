"""Streaming runs through the official client: every stream mode, namespaces, headers, errors."""

from __future__ import annotations

import time
from typing import Any

import httpx
from langgraph_sdk.client import LangGraphClient

from .conftest import KEY_A, Server

HI = {"messages": [{"role": "user", "content": "hi"}]}


async def collect(stream: Any) -> list[Any]:
    return [part async for part in stream]


async def test_values_stream_starts_with_metadata_and_ends_with_final_state(client: LangGraphClient) -> None:
    thread = await client.threads.create()
    parts = await collect(client.runs.stream(thread["thread_id"], "echo", input=HI))
    assert parts[0].event == "metadata"
    run_id = parts[0].data["run_id"]
    assert parts[0].data["attempt"] == 1
    assert [p.event for p in parts[1:]] == ["values", "values"]
    final = parts[-1].data
    assert [m["type"] for m in final["messages"]] == ["human", "ai"]
    assert final["messages"][1]["content"] == "echo: hi"
    assert final["count"] == 1
    run = await client.runs.get(thread["thread_id"], run_id)
    assert run["status"] == "success"
    assert (await client.threads.get(thread["thread_id"]))["status"] == "idle"


async def test_run_ids_are_uuid7(client: LangGraphClient) -> None:
    thread = await client.threads.create()
    parts = await collect(client.runs.stream(thread["thread_id"], "echo", input=HI))
    assert parts[0].data["run_id"][14] == "7"


async def test_updates_custom_and_debug_modes(client: LangGraphClient) -> None:
    thread = await client.threads.create()
    parts = await collect(
        client.runs.stream(thread["thread_id"], "custom", input={"n": 3}, stream_mode=["updates", "custom", "debug"])
    )
    events = [p.event for p in parts]
    assert [p.data for p in parts if p.event == "custom"] == [{"progress": 0}, {"progress": 1}, {"progress": 2}]
    updates = [p.data for p in parts if p.event == "updates"]
    assert updates == [{"progress": {"greeting": "hello"}}]  # env from langgraph.json reached the graph
    debug_types = {p.data["type"] for p in parts if p.event == "debug"}
    assert {"checkpoint", "task", "task_result"} <= debug_types
    assert "values" not in events


async def test_tasks_and_checkpoints_modes(client: LangGraphClient) -> None:
    thread = await client.threads.create()
    parts = await collect(
        client.runs.stream(thread["thread_id"], "echo", input=HI, stream_mode=["tasks", "checkpoints"])
    )
    tasks = [p.data for p in parts if p.event == "tasks"]
    assert tasks[0]["name"] == "respond" and "input" in tasks[0]
    assert tasks[1]["name"] == "respond" and tasks[1]["error"] is None
    checkpoints = [p.data for p in parts if p.event == "checkpoints"]
    assert checkpoints and checkpoints[-1]["values"]["count"] == 1
    assert checkpoints[-1]["config"]["configurable"]["thread_id"] == thread["thread_id"]


async def test_messages_tuple_streams_llm_tokens(client: LangGraphClient) -> None:
    thread = await client.threads.create()
    parts = await collect(client.runs.stream(thread["thread_id"], "chat", input=HI, stream_mode="messages-tuple"))
    messages = [p.data for p in parts if p.event == "messages"]
    assert len(messages) > 1
    chunk, meta = messages[0]
    assert chunk["type"] == "AIMessageChunk"
    assert meta["langgraph_node"] == "model"
    assert "".join(m[0]["content"] for m in messages) == "the quick brown fox"


async def test_messages_mode_partial_accumulates(client: LangGraphClient) -> None:
    thread = await client.threads.create()
    parts = await collect(client.runs.stream(thread["thread_id"], "chat", input=HI, stream_mode="messages"))
    events = [p.event for p in parts]
    assert events[1] == "messages/metadata"
    partials = [p.data for p in parts if p.event == "messages/partial"]
    assert partials[-1][0]["content"] == "the quick brown fox"
    assert len(partials[0][0]["content"]) < len(partials[-1][0]["content"])


async def test_events_mode(client: LangGraphClient) -> None:
    thread = await client.threads.create()
    parts = await collect(client.runs.stream(thread["thread_id"], "chat", input=HI, stream_mode=["events", "values"]))
    kinds = {p.data["event"] for p in parts if p.event == "events"}
    assert {"on_chain_start", "on_chat_model_stream", "on_chain_end"} <= kinds
    values = [p.data for p in parts if p.event == "values"]
    assert values[-1]["messages"][-1]["content"] == "the quick brown fox"
    assert parts[-1].event == "events" and parts[-1].data["event"] == "on_chain_end"


async def test_subgraph_namespaces(client: LangGraphClient) -> None:
    thread = await client.threads.create()
    parts = await collect(
        client.runs.stream(
            thread["thread_id"], "nested", input={"value": 2}, stream_mode="values", stream_subgraphs=True
        )
    )
    nested = [p for p in parts if p.event.startswith("values|")]
    assert nested, [p.event for p in parts]
    assert nested[0].event.startswith("values|parent:")
    assert parts[-1].event == "values" and parts[-1].data["value"] == 20
    without = await collect(client.runs.stream(thread["thread_id"], "nested", input={"value": 3}))
    assert all("|" not in p.event for p in without)


async def test_error_event_and_run_status(client: LangGraphClient) -> None:
    thread = await client.threads.create()
    parts = await collect(client.runs.stream(thread["thread_id"], "failing", input={}))
    assert parts[-1].event == "error"
    assert parts[-1].data["error"] == "ValueError"
    assert "boom" in parts[-1].data["message"]
    runs = await client.runs.list(thread["thread_id"])
    assert runs[0]["status"] == "error"
    assert (await client.threads.get(thread["thread_id"]))["status"] == "error"


async def test_wire_headers_and_heartbeat(server: Server, client: LangGraphClient) -> None:
    thread = await client.threads.create()
    tid = thread["thread_id"]
    async with (
        httpx.AsyncClient(base_url=server.url, headers={"x-api-key": KEY_A}) as http,
        http.stream(
            "POST",
            f"/threads/{tid}/runs/stream",
            json={"assistant_id": "slow", "input": {"delay": 0.7, "steps": 2}, "stream_resumable": True},
        ) as response,
    ):
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        location = response.headers["content-location"]
        assert location.startswith(f"/threads/{tid}/runs/")
        assert response.headers["location"] == location + "/stream"
        body = (await response.aread()).decode()
    assert ": heartbeat" in body  # 0.5 s heartbeat configured, run idles 0.7 s per step
    assert body.startswith("event: metadata\r\ndata: ")
    assert "\r\nid: " in body  # resumable: every event carries its id


async def test_stateless_stream_and_wait(client: LangGraphClient) -> None:
    parts = await collect(client.runs.stream(None, "echo", input=HI))
    assert parts[0].event == "metadata" and parts[-1].data["count"] == 1
    out = await client.runs.wait(None, "echo", input=HI)
    assert out["messages"][-1]["content"] == "echo: hi"


async def test_on_run_created_reads_content_location(client: LangGraphClient) -> None:
    thread = await client.threads.create()
    seen: list[Any] = []
    parts = await collect(client.runs.stream(thread["thread_id"], "echo", input=HI, on_run_created=seen.append))
    assert seen[0]["run_id"] == parts[0].data["run_id"]
    assert seen[0]["thread_id"] == thread["thread_id"]


async def test_first_token_reaches_the_client_while_the_model_still_streams(client: LangGraphClient) -> None:
    """A model that hands out a fast answer without suspending (its tokens already received) must not hold
    the first token back until its last: the client sees the first token before the model's last one."""
    thread = await client.threads.create()
    first_token_at = None
    final: dict[str, Any] = {}
    async for part in client.runs.stream(
        thread["thread_id"], "burst", input=HI, stream_mode=["messages-tuple", "values"]
    ):
        if part.event == "messages" and first_token_at is None:
            first_token_at = time.monotonic()
        if part.event == "values":
            final = part.data
    assert first_token_at is not None and "streamed_until" in final
    assert first_token_at < final["streamed_until"], (
        f"first token {1000 * (final['streamed_until'] - first_token_at):.1f} ms after the model's last"
    )
