"""The official Python client's thread session (``client.threads.stream``) against a real server:
messages, values, tools, extensions, interrupts, errors, subgraphs, WebSocket, sync client, RemoteGraph."""

from __future__ import annotations

import asyncio
import time
from typing import Any, Literal

import pytest
from langgraph.pregel.remote import RemoteGraph
from langgraph_sdk import get_client, get_sync_client
from langgraph_sdk.client import LangGraphClient

from packages.server.tests.core.conftest import KEY_A, Server

from .helpers import CuttingProxy, http, open_stream, root_terminal

pytestmark = pytest.mark.integration
HI = {"messages": [{"role": "user", "content": "hi"}]}
LIMIT = 30.0


async def test_messages_values_and_output(client: LangGraphClient) -> None:
    async def flow() -> None:
        async with client.threads.stream(assistant_id="llm") as thread:
            await thread.run.start(input=HI)
            streams = [m async for m in thread.messages]
            assert [await m.text for m in streams] == ["hello streaming world"]
            assert streams[0].node == "chat" and streams[0].message_id
            output = await thread.output
            assert output["messages"][-1]["type"] == "ai"
            assert output["messages"][0]["content"] == "hi"

    await asyncio.wait_for(flow(), LIMIT)


async def test_tool_calls_and_usage(client: LangGraphClient) -> None:
    async def flow() -> None:
        async with client.threads.stream(assistant_id="tooler") as thread:
            await thread.run.start(input={"messages": [{"role": "user", "content": "add"}]})
            handles = [h async for h in thread.tool_calls]
            calls = [(h.tool_call_id, h.name, h.input, (await h.output)["content"]) for h in handles]
            assert calls == [("call_1", "add", {"a": 1, "b": 2}, "3")]
            await thread.output
        async with client.threads.stream(assistant_id="tooler") as thread:
            await thread.run.start(input={"messages": [{"role": "user", "content": "add"}]})
            streams = [m async for m in thread.messages]
            texts = [await m.text for m in streams]
            assert texts[-1] == "the sum is 3"
            final = await streams[-1].output
            assert final.usage_metadata == {"input_tokens": 9, "output_tokens": 3, "total_tokens": 12}

    await asyncio.wait_for(flow(), LIMIT)


async def test_custom_events_and_extensions(client: LangGraphClient) -> None:
    async def flow() -> None:
        async with client.threads.stream(assistant_id="customer") as thread:
            await thread.run.start(input={"log": []})
            # the Python client yields the event data of that name (JS yields its payload)
            assert [item async for item in thread.extensions["myext"]] == [{"name": "myext", "payload": {"x": 1}}]
            await thread.output
        async with client.threads.stream(assistant_id="ext_graph") as thread:  # a named transformer channel
            await thread.run.start(input={"log": []})
            counts = [item async for item in thread.extensions["stepCounter"]]
            assert counts and counts[0] == {"name": "stepCounter", "payload": {"n": 1}}
            await thread.output

    await asyncio.wait_for(flow(), LIMIT)


@pytest.mark.parametrize("transport", ["sse", "websocket"])
async def test_interrupt_answered_with_respond(client: LangGraphClient, transport: Literal["sse", "websocket"]) -> None:
    # the Python WebSocket transport sends only the session's headers on the handshake
    headers = {"x-api-key": KEY_A} if transport == "websocket" else None

    async def flow() -> None:
        async with client.threads.stream(assistant_id="interrupter", transport=transport, headers=headers) as thread:
            await thread.run.start(input={"log": []})
            assert [v.get("log") async for v in thread.values][-1] == []  # the first is a REST snapshot
            for _ in range(100):
                if thread.interrupted:
                    break
                await asyncio.sleep(0.05)
            assert thread.interrupts == [
                {
                    "interrupt_id": thread.interrupts[0]["interrupt_id"],
                    "value": {"question": "approve?"},
                    "namespace": [],
                }
            ]
            await thread.run.respond("yes")
            assert (await thread.output)["log"] == ["answer=yes", "after"]

    await asyncio.wait_for(flow(), LIMIT)


async def test_error_raises_with_the_message(client: LangGraphClient) -> None:
    async def flow() -> None:
        async with client.threads.stream(assistant_id="errorer") as thread:
            await thread.run.start(input={"log": []})
            with pytest.raises(RuntimeError, match="Run errored: kaboom"):
                await thread.output

    await asyncio.wait_for(flow(), LIMIT)


async def test_second_run_on_the_same_thread_sees_only_its_own_events(client: LangGraphClient) -> None:
    async def flow() -> None:
        async with client.threads.stream(assistant_id="trivial") as thread:
            await thread.run.start(input={"log": ["first"]})
            await thread.output
            thread_id = thread.thread_id
        async with client.threads.stream(thread_id, assistant_id="trivial") as thread:
            await thread.run.start(input={"log": ["second"]})
            seen = [v["log"] async for v in thread.values]
            assert seen[-1] == ["first", "step", "second", "step"]
            assert all(log[:2] == ["first", "step"] for log in seen[1:])  # nothing replayed from run one
            assert (await thread.output)["log"] == ["first", "step", "second", "step"]

    await asyncio.wait_for(flow(), LIMIT)


async def test_subgraph_namespaces_and_handles(client: LangGraphClient, ts_server: Server) -> None:
    async def flow() -> tuple[str, list[str]]:
        async with client.threads.stream(assistant_id="subgrapher") as thread:
            await thread.run.start(input=HI)
            handles = [h async for h in thread.subgraphs]
            await thread.output
            assert [(h.graph_name, h.status) for h in handles] == [("child", "completed")]
            child = list(handles[0].path)
            assert len(child) == 1 and child[0].startswith("child:")
            return thread.thread_id, child

    thread_id, child = await asyncio.wait_for(flow(), LIMIT)
    async with http(ts_server.url) as c:  # namespace filters on the replay of that run
        only_child = await open_stream(c, thread_id, channels=["messages", "custom"], namespaces=[["child"]])
        root_only = await open_stream(c, thread_id, channels=["values"], namespaces=[[]], depth=0)
        everything = await open_stream(c, thread_id, channels=["values", "lifecycle"])
        await everything.terminals(1)
        await only_child.wait_for(lambda evs: any(e["method"] == "messages" for e in evs))
        assert {tuple(e["params"]["namespace"]) for e in only_child.events} == {tuple(child)}
        assert {e["method"] for e in only_child.events} == {"messages", "custom"}
        assert [e for e in everything.events if e["params"]["namespace"] and e["method"] == "values"]
        await root_only.wait_for(lambda evs: len(evs) >= 2)
        assert all(e["params"]["namespace"] == [] for e in root_only.events)
        children = [
            e["params"]["data"] for e in everything.events if e["method"] == "lifecycle" and e["params"]["namespace"]
        ]
        assert [d["event"] for d in children] == ["started", "completed"] and children[1]["graph_name"] == "child"
        for s in (only_child, root_only, everything):
            await s.close()
        tree = (
            await c.post(f"/threads/{thread_id}/commands", json={"id": 1, "method": "agent.getTree", "params": {}})
        ).json()
        node = tree["result"]["tree"]
        assert node["status"] == "completed" and node["graph_name"] == "subgrapher"
        assert [(n["namespace"], n["status"], n["graph_name"]) for n in node["children"]] == [
            (list(child), "completed", "child")
        ]


async def test_concurrent_sessions_and_streams(client: LangGraphClient, ts_server: Server) -> None:
    async def one(text: str) -> list[Any]:
        async with client.threads.stream(assistant_id="trivial") as thread:
            await thread.run.start(input={"log": [text]})
            # The projection first yields the thread's state fetched over HTTP, which is empty when the
            # run has not written its first checkpoint yet (the SDK's design); the last value is final.
            values = [v.get("log") async for v in thread.values]
            return [values[-1], (await thread.output)["log"]]

    results = await asyncio.wait_for(asyncio.gather(*(one(f"s{i}") for i in range(4))), LIMIT)
    assert results == [[[f"s{i}", "step"], [f"s{i}", "step"]] for i in range(4)]
    async with http(ts_server.url) as c:  # two streams of one thread see the same numbers and ids
        thread_id = str((await c.post("/threads", json={})).json()["thread_id"])
        first = await open_stream(c, thread_id)
        second = await open_stream(c, thread_id, channels=["values", "lifecycle"])
        await c.post(f"/threads/{thread_id}/runs/wait", json={"assistant_id": "subgrapher", "input": HI})
        await first.terminals(1)
        await second.terminals(1)
        by_seq = {e["seq"]: e for e in first.events}
        assert all(by_seq[e["seq"]] == e for e in second.events)
        assert len(second.events) < len(first.events)
        await first.close()
        await second.close()


def test_sync_client_session(ts_server: Server) -> None:
    client = get_sync_client(url=ts_server.url, api_key=KEY_A)
    with client.threads.stream(assistant_id="interrupter") as thread:
        thread.run.start(input={"log": []})
        list(thread.values)
        for _ in range(100):
            if thread.interrupted:
                break
            time.sleep(0.05)
        assert thread.interrupts[0]["value"] == {"question": "approve?"}
        thread.run.respond("sync-yes")
        assert thread.output["log"] == ["answer=sync-yes", "after"]
    with client.threads.stream(assistant_id="llm") as thread:
        thread.run.start(input=HI)
        assert [str(m.text) for m in thread.messages] == ["hello streaming world"]


async def test_remote_graph_over_the_protocol(ts_server: Server) -> None:
    remote = RemoteGraph("tooler", url=ts_server.url, api_key=KEY_A)

    async def flow() -> None:
        async with await remote.astream_events({"messages": [{"role": "user", "content": "add"}]}, version="v3") as run:
            events = []
            async for event in run:
                events.append(event)
                if root_terminal(event):
                    break
            assert events[0]["params"]["data"]["event"] == "running"
            assert events[-1]["params"]["data"]["event"] == "completed"
            assert [e["params"]["data"]["event"] for e in events if e["method"] == "tools"] == [
                "tool-started",
                "tool-finished",
            ]
            seqs = [e["seq"] for e in events]
            assert seqs == sorted(set(seqs))
            final = await run.output()
            assert final["messages"][-1]["type"] == "ai"

    await asyncio.wait_for(flow(), LIMIT)
    out = await remote.ainvoke({"messages": [{"role": "user", "content": "add"}]})  # the v1 path still works
    assert out["messages"][-1]["type"] == "ai"


async def test_the_client_reconnects_mid_run_and_misses_nothing(ts_server: Server) -> None:
    port = int(ts_server.url.rsplit(":", 1)[1])
    async with CuttingProxy(port) as proxy:
        client = get_client(url=f"http://127.0.0.1:{proxy.port}", api_key=KEY_A)
        try:

            async def flow() -> None:
                async with client.threads.stream(assistant_id="slower") as thread:
                    await thread.run.start(input={"ticks": 20})
                    ticks = []
                    async for event in thread.subscribe(["custom"]):
                        ticks.append(event["params"]["data"]["tick"])
                        if len(ticks) == 5:
                            proxy.cut()  # the shared stream and the lifecycle watcher both drop
                            accepted_at_cut = proxy.accepted
                    assert ticks == list(range(20))  # replayed from the cursor: no gap, no duplicate
                    assert (await thread.output)["log"] == ["slow-done"]
                    assert proxy.cuts >= 2 and proxy.accepted >= accepted_at_cut + 2  # both reconnected

            await asyncio.wait_for(flow(), LIMIT)
        finally:
            await client.aclose()


async def test_sessions_on_a_known_thread_wait_for_their_own_run(client: LangGraphClient, ts_server: Server) -> None:
    """A session on an existing thread opens its lifecycle watcher before ``run.start``: it must get
    its own run's terminal, not the previous run's (RemoteGraph with a thread_id does the same)."""

    async def flow() -> None:
        thread_id = str((await client.threads.create())["thread_id"])
        for i in range(3):
            async with client.threads.stream(thread_id, assistant_id="slower") as thread:
                await thread.run.start(input={"ticks": 3, "log": [f"run{i}"]})
                assert (await thread.output)["log"][-2:] == [f"run{i}", "slow-done"]
        remote = RemoteGraph("slower", url=ts_server.url, api_key=KEY_A)
        config = {"configurable": {"thread_id": thread_id}}
        for i in range(2):
            async with await remote.astream_events({"ticks": 3, "log": [f"remote{i}"]}, config, version="v3") as run:
                assert (await run.output())["log"][-2:] == [f"remote{i}", "slow-done"]

    await asyncio.wait_for(flow(), 60)
