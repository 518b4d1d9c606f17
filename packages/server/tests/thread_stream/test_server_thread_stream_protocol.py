"""The thread-streaming protocol on the wire: commands and their errors, the lifecycle contract
(exactly one terminal per run, whatever ends it), replay with and without ``since``, bad input."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from packages.server.tests.core.conftest import Server

from .helpers import ALL, command, http, lifecycle, new_thread, open_stream, root_terminal, start

pytestmark = pytest.mark.integration
HI = {"messages": [{"role": "user", "content": "hi"}]}


async def test_every_kind_of_ending_gives_one_terminal_last(ts_server: Server) -> None:
    async with http(ts_server.url) as c:
        tid = new_thread()
        stream = await open_stream(c, tid)  # opened before the thread exists
        await start(c, tid, "trivial", {"log": []})
        await stream.terminals(1)
        await start(c, tid, "errorer", {"log": []})
        await stream.terminals(2)
        await start(c, tid, "two_interrupts", {"log": []})
        events = await stream.terminals(3)
        roots = lifecycle(events)
        assert [(d["event"], d.get("error")) for d in roots] == [
            ("running", None),
            ("completed", None),
            ("running", None),
            ("failed", "kaboom"),
            ("running", None),
            ("interrupted", None),
        ]
        assert len({d["run_id"] for d in roots}) == 3
        last_run = [e for e in events if e["seq"] > roots_seq(events, 4)]
        asks = [e for e in last_run if e["method"] == "input.requested"]
        assert sorted(a["params"]["data"]["value"] for a in asks) == ["A?", "B?"]
        assert all(a["params"]["data"]["payload"] == a["params"]["data"]["value"] for a in asks)
        assert root_terminal(last_run[-1])  # the terminal is the run's last event
        # answer one of two: a new run re-announces the other with the same id, then pauses again
        answered = asks[0]["params"]["data"]["interrupt_id"]
        other = asks[1]["params"]["data"]["interrupt_id"]
        reply = await command(c, tid, "input.respond", {"interrupt_id": answered, "namespace": [], "response": "r0"})
        assert reply["type"] == "success" and reply["result"] == {}
        again = await command(c, tid, "input.respond", {"interrupt_id": answered, "namespace": [], "response": "x"})
        assert again["error"] == "no_such_interrupt"
        events = await stream.terminals(4)
        resumed = [e for e in events if e["seq"] > reply["meta"]["applied_through_seq"]]
        assert [e["params"]["data"]["interrupt_id"] for e in resumed if e["method"] == "input.requested"] == [other]
        assert lifecycle(resumed)[-1]["event"] == "interrupted"
        # the list form with an update applied in the resume superstep
        reply = await command(
            c,
            tid,
            "input.respond",
            {"responses": [{"interrupt_id": other, "namespace": [], "response": "r1"}], "update": {"log": ["upd"]}},
        )
        assert reply["type"] == "success"
        await stream.terminals(5)
        state = (await c.get(f"/threads/{tid}/state")).json()
        assert "upd" in state["values"]["log"] and any(x.startswith("b=r1") for x in state["values"]["log"])
        await stream.close()


def roots_seq(events: list[dict], index: int) -> int:
    """The seq of the index-th root lifecycle event."""
    return [e["seq"] for e in events if e["method"] == "lifecycle" and not e["params"]["namespace"]][index]


async def test_cancellations_end_with_failed(ts_server: Server) -> None:
    async with http(ts_server.url) as c:
        tid = new_thread()
        stream = await open_stream(c, tid, channels=["lifecycle"])
        slow = await start(c, tid, "slower", {"ticks": 40})
        queued = await start(c, tid, "trivial", {"log": []})  # enqueued behind it: pending
        await stream.wait_for(lambda evs: len(evs) >= 1)
        assert (await c.post(f"/threads/{tid}/runs/{queued}/cancel", params={"wait": 0})).status_code == 202
        await asyncio.sleep(0.3)
        assert len(lifecycle(stream.events)) == 1  # held back: the active run's events stay contiguous
        await c.post(f"/threads/{tid}/runs/{slow}/cancel", params={"wait": 1, "action": "interrupt"})
        await stream.terminals(2)
        roots = lifecycle(stream.events)
        assert [(d["event"], d["run_id"], d.get("code")) for d in roots] == [
            ("running", slow, None),
            ("failed", slow, "cancelled"),
            ("failed", queued, "cancelled"),
        ]
        assert roots[1]["error"] == "Run cancelled" and roots[2]["error"] == "Run cancelled before it started"
        # a newer run with multitask_strategy=interrupt: the old run ends before the new one runs
        old = await start(c, tid, "slower", {"ticks": 40})
        await stream.wait_for(lambda evs: len(lifecycle(evs)) >= 4)
        new = await start(c, tid, "trivial", {"log": []}, multitask_strategy="interrupt")
        await stream.terminals(4)
        tail = [(d["event"], d["run_id"]) for d in lifecycle(stream.events)[3:]]
        assert tail == [("running", old), ("failed", old), ("running", new), ("completed", new)]
        # reject: refused while busy, and the refused run still gets its one terminal after the active one
        busy = await start(c, tid, "slower", {"ticks": 5})
        refused = await command(c, tid, "run.start", {"assistant_id": "trivial", "multitask_strategy": "reject"})
        assert refused["type"] == "error" and refused["error"] == "invalid_argument"
        await stream.terminals(6)
        await asyncio.sleep(0.2)
        tail = [(d["event"], d.get("code")) for d in lifecycle(stream.events)[7:]]
        assert tail == [("running", None), ("completed", None), ("failed", "rejected")]
        assert lifecycle(stream.events)[7]["run_id"] == busy
        # rollback of a running run
        doomed = await start(c, tid, "slower", {"ticks": 40})
        await stream.wait_for(lambda evs: lifecycle(evs)[-1].get("run_id") == doomed)
        await c.post(f"/threads/{tid}/runs/{doomed}/cancel", params={"wait": 1, "action": "rollback"})
        await stream.wait_for(lambda evs: lifecycle(evs)[-1]["event"] == "failed")
        assert lifecycle(stream.events)[-1]["error"] == "Run cancelled (rollback)"
        await stream.close()


async def test_rest_runs_appear_on_the_thread_stream(ts_server: Server) -> None:
    async with http(ts_server.url) as c:
        tid = (await c.post("/threads", json={})).json()["thread_id"]
        stream = await open_stream(c, tid)
        # the v1 stream of the same run is unchanged (no protocol frames on it)
        async with c.stream(
            "POST",
            f"/threads/{tid}/runs/stream",
            json={"assistant_id": "chat", "input": HI, "stream_mode": "messages-tuple"},
        ) as r:
            v1 = [line async for line in r.aiter_lines() if line.startswith("event: ")]
        assert v1[0] == "event: metadata" and set(v1[1:]) == {"event: messages"}
        await stream.terminals(1)
        await c.post(f"/threads/{tid}/runs/wait", json={"assistant_id": "approval", "input": {"request": "x"}})
        events = await stream.terminals(2)
        methods = {e["method"] for e in events}
        assert {"values", "updates", "lifecycle", "input.requested"} <= methods and "messages" not in methods
        assert [d["event"] for d in lifecycle(events)] == ["running", "completed", "running", "interrupted"]
        ask = next(e for e in events if e["method"] == "input.requested")["params"]["data"]
        assert ask["value"] == {"question": "approve x?"}
        # answering a REST run's interrupt through the protocol
        reply = await command(
            c, tid, "input.respond", {"interrupt_id": ask["interrupt_id"], "namespace": [], "response": "ok"}
        )
        assert reply["type"] == "success"
        await stream.terminals(3)
        assert (await c.get(f"/threads/{tid}/state")).json()["values"]["log"][-1] == "finished:ok"
        await stream.close()


async def test_replay_since_is_byte_identical_and_no_since_starts_at_the_current_run(ts_server: Server) -> None:
    async with http(ts_server.url) as c:
        tid = new_thread()
        live = await open_stream(c, tid)
        await start(c, tid, "errorer", {"log": []})
        await live.terminals(1)
        second = await start(c, tid, "subgrapher", HI)
        await live.terminals(2)
        replay = await open_stream(c, tid, since=0)
        await replay.terminals(2)
        assert replay.frames == live.frames  # the failed run's error too: stored once, replayed as stored
        assert [e["seq"] for e in live.events] == list(range(1, len(live.events) + 1))
        middle = live.events[len(live.events) // 2]["seq"]
        partial = await open_stream(c, tid, since=middle)
        await partial.terminals(1)
        assert partial.frames == [f for e, f in zip(live.events, live.frames, strict=True) if e["seq"] > middle]
        current = await open_stream(c, tid, channels=["lifecycle"])  # no since: the latest run only
        await current.terminals(1)
        assert [d["run_id"] for d in lifecycle(current.events)] == [second, second]
        future = await open_stream(c, tid, since=10_000)  # ahead of the log: nothing, stream stays open
        await asyncio.sleep(1.2)
        assert future.events == [] and not future._task.done()
        for s in (live, replay, partial, current, future):
            await s.close()


async def test_reconnect_mid_run_with_since_misses_nothing(ts_server: Server) -> None:
    async with http(ts_server.url) as c:
        tid = new_thread()
        await start(c, tid, "slower", {"ticks": 15})
        first = await open_stream(c, tid, channels=["custom", "lifecycle"], since=0)
        await first.wait_for(lambda evs: len(evs) >= 4)
        await first.close()
        cursor = first.events[-1]["seq"]
        second = await open_stream(c, tid, channels=["custom", "lifecycle"], since=cursor)
        await second.terminals(1)
        ticks = [e["params"]["data"]["tick"] for e in first.events + second.events if e["method"] == "custom"]
        assert ticks == list(range(15))
        await second.close()


async def test_state_commands_and_fork(ts_server: Server) -> None:
    async with http(ts_server.url) as c:
        tid = new_thread()
        stream = await open_stream(c, tid, channels=["lifecycle"])
        await start(c, tid, "trivial", {"log": ["a"]})
        await stream.terminals(1)
        got = await command(c, tid, "state.get", {"namespace": [], "keys": ["log"]})
        assert got["result"]["values"] == {"log": ["a", "step"]} and got["result"]["checkpoint"]["id"]
        assert got["meta"]["applied_through_seq"] == stream.events[-1]["seq"]
        listed = await command(c, tid, "state.listCheckpoints", {"limit": 2})
        checkpoints = listed["result"]["checkpoints"]
        assert len(checkpoints) == 2 and checkpoints[0]["id"] == got["result"]["checkpoint"]["id"]
        assert {"id", "timestamp", "step"} <= set(checkpoints[0])
        before = await command(c, tid, "state.listCheckpoints", {"before": checkpoints[0]["id"], "limit": 10})
        assert before["result"]["checkpoints"][0]["id"] == checkpoints[1]["id"]
        fork = await command(c, tid, "state.fork", {"checkpoint_id": checkpoints[1]["id"], "input": None})
        assert fork["result"]["thread_id"] == tid and fork["result"]["run_id"]
        await stream.terminals(2)
        errors = [
            await command(c, tid, "state.fork", {"checkpoint_id": "nope"}),
            await command(c, tid, "state.get", {"namespace": ["ghost:1"]}),
            await command(c, tid, "state.listCheckpoints", {"limit": 0}),
            await command(c, tid, "agent.getTree", {"run_id": "not-a-run"}),
            await command(c, tid, "input.inject", {"namespace": [], "message": {"role": "user", "content": "x"}}),
        ]
        assert [e["error"] for e in errors] == [
            "no_such_checkpoint",
            "no_such_namespace",
            "invalid_argument",
            "no_such_run",
            "not_supported",
        ]
        fresh = new_thread()
        r = await c.post(f"/threads/{fresh}/commands", json={"id": 1, "method": "agent.getTree", "params": {}})
        assert r.status_code == 404  # no such thread (yet): like every other route
        await stream.close()


async def test_bad_input_is_answered_never_500(ts_server: Server) -> None:
    async with http(ts_server.url) as c:
        tid = new_thread()
        bodies: list[dict[str, Any]] = [
            {},
            {"channels": []},
            {"channels": ["bogus"]},
            {"channels": ["values"], "since": "abc"},
            {"channels": ["values"], "since": -1},
            {"channels": ["values"], "depth": 1.5},
            {"channels": ["values"], "namespaces": "x"},
            {"channels": ["values"], "extra": 1},
        ]
        for body in bodies:
            r = await c.post(f"/threads/{tid}/stream/events", json=body)
            assert r.status_code == 400 and "detail" in r.json(), (body, r.text)
        r = await c.post(f"/threads/{tid}/stream/events", content=b"{oops")
        assert (r.status_code, r.json()) == (400, {"detail": "Invalid JSON body"})
        assert (await c.get(f"/threads/{tid}/stream/events")).status_code == 405
        r = await c.post(f"/threads/{tid}/commands", content=b"[1")
        assert r.status_code == 400
        envelopes: list[Any] = [[], {"method": "run.start"}, {"id": "1", "method": "run.start"}, {"id": 1, "method": 5}]
        for envelope in envelopes:
            r = await c.post(f"/threads/{tid}/commands", json=envelope)
            assert r.status_code == 400 and r.json()["error"] == "invalid_argument", envelope
        replies = [
            await command(c, tid, "bogus.method", {}),
            await command(c, tid, "run.start", {}),
            await command(c, tid, "run.start", {"assistant_id": "no-such-graph"}),
            await command(c, tid, "run.start", {"assistant_id": "trivial", "unknown": 1}),
            await command(c, tid, "run.start", {"assistant_id": "trivial", "multitask_strategy": "sideways"}),
            await command(c, tid, "input.respond", {"namespace": [], "response": 1}),
            await command(c, tid, "subscription.subscribe", {"channels": ["values"]}),
        ]
        assert [r["error"] for r in replies] == ["unknown_command"] + ["invalid_argument"] * 5 + ["not_supported"]
        assert replies[0]["message"] == "Unknown protocol command: bogus.method"
        r = await c.post(f"/threads/{tid}/commands", json={"id": 9, "method": "run.start", "params": [1]})
        assert r.status_code == 200 and r.json()["error"] == "invalid_argument"
        assert (await c.post("/threads/not-a-uuid/stream/events", json={"channels": ALL})).status_code == 422


async def test_headers_and_heartbeats(ts_server: Server) -> None:
    async with http(ts_server.url) as c:
        tid = new_thread()
        async with c.stream("POST", f"/threads/{tid}/stream/events", json={"channels": ["values"]}) as r:
            assert r.headers["content-type"].startswith("text/event-stream")
            assert r.headers["cache-control"] == "no-store"
            chunks = []
            async for chunk in r.aiter_raw():  # COGNI_STREAM_HEARTBEAT_SECONDS=0.5 in the tests
                chunks.append(chunk)
                if len(chunks) == 2:
                    break
        assert chunks == [b": heartbeat\r\n\r\n"] * 2
        info = (await c.get("/info")).json()
        assert info["flags"]["thread_streaming"] is True
        assert info["thread_streaming"]["transports"] == ["sse", "websocket"]


async def test_run_start_on_a_paused_thread_resumes_it(ts_server: Server) -> None:
    async with http(ts_server.url) as c:
        tid = new_thread()
        stream = await open_stream(c, tid, channels=["lifecycle", "input"])
        await start(c, tid, "interrupter", {"log": []})
        await stream.terminals(1)
        await start(c, tid, "interrupter", "resume-via-run.start")
        await stream.terminals(2)
        log = (await c.get(f"/threads/{tid}/state")).json()["values"]["log"]
        assert log == ["answer=resume-via-run.start", "after"]
        thread = (await c.get(f"/threads/{tid}")).json()
        assert thread["metadata"]["graph_id"] == "interrupter"
        await stream.close()


async def test_goto_on_respond(ts_server: Server) -> None:
    async with http(ts_server.url) as c:
        tid = new_thread()
        stream = await open_stream(c, tid, channels=["lifecycle", "input"])
        await start(c, tid, "interrupter", {"log": []})
        await stream.terminals(1)
        ask = next(e for e in stream.events if e["method"] == "input.requested")["params"]["data"]
        reply = await command(
            c,
            tid,
            "input.respond",
            {"interrupt_id": ask["interrupt_id"], "namespace": [], "response": "g", "goto": "after"},
        )
        assert reply["type"] == "success"
        await stream.terminals(2)
        assert (await c.get(f"/threads/{tid}/state")).json()["values"]["log"][-1] == "after"
        await stream.close()


async def test_an_interrupt_inside_a_subgraph(ts_server: Server) -> None:
    async with http(ts_server.url) as c:
        tid = new_thread()
        stream = await open_stream(c, tid, channels=["lifecycle", "input"])
        await start(c, tid, "sub_interrupt", {"log": []})
        await stream.terminals(1)
        ask = next(e for e in stream.events if e["method"] == "input.requested")
        child = ask["params"]["namespace"]
        assert len(child) == 1 and child[0].startswith("child:")  # raised in the subgraph, announced there
        children = [
            (e["params"]["namespace"], e["params"]["data"]["event"])
            for e in stream.events
            if e["method"] == "lifecycle" and e["params"]["namespace"]
        ]
        assert children == [(child, "started"), (child, "interrupted")]
        assert root_terminal(stream.events[-1]) and stream.events[-1]["params"]["data"]["event"] == "interrupted"
        state = await command(c, tid, "state.get", {"namespace": child})
        assert state["result"]["checkpoint"]["ns"] == child[0]
        reply = await command(
            c,
            tid,
            "input.respond",
            {"interrupt_id": ask["params"]["data"]["interrupt_id"], "namespace": child, "response": "ok"},
        )
        assert reply["type"] == "success"
        await stream.terminals(2)
        assert "inner-answer=ok" in (await c.get(f"/threads/{tid}/state")).json()["values"]["log"]
        await stream.close()
