"""Unit tests of the small pure pieces: ids, JSON conventions, stream-mode mapping, commands."""

from __future__ import annotations

import time
import uuid

from langchain_core.messages import AIMessage, AIMessageChunk
from langgraph.types import Interrupt, Send

from cogni_server.ids import system_assistant_id, uuid7
from cogni_server.runs.inputs import build_command, run_config
from cogni_server.runs.stream_modes import ChunkRouter, langgraph_modes
from cogni_server.serde import dumps, loads


def test_uuid7_is_version_7_time_ordered_and_unique() -> None:
    ids = [uuid7() for _ in range(5000)]
    assert all(i.version == 7 and i.variant == uuid.RFC_4122 for i in ids)
    assert ids == sorted(ids, key=lambda u: u.int)
    assert len(set(ids)) == len(ids)
    millis = ids[-1].int >> 80
    assert abs(millis - time.time() * 1000) < 5000


def test_system_assistant_ids_match_the_reference_server() -> None:
    assert str(system_assistant_id("agent")) == "fe096781-5601-53d2-b2f6-0d3403f7e9ca"


def test_messages_and_interrupts_serialise_like_langgraph() -> None:
    message = AIMessage(content="hi", id="m1", tool_calls=[{"name": "t", "args": {"a": 1}, "id": "c1"}])
    data = loads(dumps({"m": message, "i": (Interrupt(value={"q": 1}, id="i1"),), "s": {1}}))
    assert data["m"]["type"] == "ai" and data["m"]["content"] == "hi" and data["m"]["id"] == "m1"
    assert data["m"]["tool_calls"][0]["name"] == "t"
    assert data["i"] == [{"value": {"q": 1}, "id": "i1"}]
    assert data["s"] == [1]


def test_langgraph_modes_always_track_values() -> None:
    assert langgraph_modes(["updates"]) == ["updates", "values"]
    assert langgraph_modes(["messages-tuple", "events"]) == ["messages", "values"]


async def test_router_names_namespaces_and_accumulates_messages() -> None:
    out: list[tuple[str, object]] = []

    async def publish(event: str, data: bytes) -> None:
        out.append((event, loads(data)))

    router = ChunkRouter(["values", "messages"], publish)
    await router.route(["parent:1"], "values", {"x": 1})
    await router.route([], "messages", (AIMessageChunk(content="a", id="m"), {"langgraph_node": "n"}))
    await router.route([], "messages", (AIMessageChunk(content="b", id="m"), {"langgraph_node": "n"}))
    assert out[0] == ("values|parent:1", {"x": 1})
    assert out[1] == ("messages/metadata", {"m": {"metadata": {"langgraph_node": "n"}}})
    assert out[2][0] == "messages/partial" and out[3][1][0]["content"] == "ab"  # type: ignore[index]
    assert router.last_values is None  # nested values are not the run's output


def test_build_command_converts_sends_and_update_pairs() -> None:
    cmd = build_command({"resume": 1, "goto": [{"node": "n", "input": {"a": 1}}, "m"], "update": [["k", 2]]})
    assert cmd.resume == 1
    assert cmd.goto == [Send("n", {"a": 1}), "m"]
    assert cmd.update == [("k", 2)]


def test_run_config_merges_identity_and_checkpoint() -> None:
    run = {
        "run_id": "r",
        "thread_id": "t",
        "assistant_id": "a",
        "graph_id": "g",
        "attempt": 2,
        "metadata": {"m": 1},
        "kwargs": {"config": {"configurable": {"x": 1}, "tags": ["z"]}, "checkpoint_id": "c"},
    }
    config = run_config(run)
    assert config["configurable"] == {
        "x": 1,
        "thread_id": "t",
        "run_id": "r",
        "assistant_id": "a",
        "graph_id": "g",
        "checkpoint_id": "c",
    }
    assert config["metadata"]["m"] == 1 and config["metadata"]["run_attempt"] == 2
    assert config["tags"] == ["z"]


def test_run_config_gives_an_app_run_its_attempt_counted_from_zero() -> None:
    """Issue 12: a retried run's LLM calls are billed (and spend-logged) under the attempt that made them."""
    base = {"run_id": "r", "thread_id": "t", "assistant_id": "a", "graph_id": "g", "metadata": {}}
    app_config = {"config": {"configurable": {"runId": "app-run", "attempt": 0, "model": "m"}}}
    first = run_config({**base, "attempt": 1, "kwargs": app_config})
    retried = run_config({**base, "attempt": 3, "kwargs": app_config})
    assert (first["configurable"]["attempt"], retried["configurable"]["attempt"]) == (0, 2)
    other = run_config({**base, "attempt": 3, "kwargs": {"config": {"configurable": {"x": 1}}}})
    assert "attempt" not in other["configurable"]  # a graph that is not an app's run gets no key of ours
