"""The WebSocket transport on the wire (commands and subscriptions on one socket, replay, close codes,
cookie credentials) and tenancy: another tenant's thread is 404 on commands, SSE and WebSocket."""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from packages.server.tests.core.conftest import KEY_A, KEY_B, Server

from .helpers import command, http, new_thread, open_stream, start

pytestmark = pytest.mark.integration


def ws_url(server: Server, thread_id: str) -> str:
    return server.url.replace("http://", "ws://") + f"/threads/{thread_id}/stream/events"


async def recv(ws: ClientConnection, limit: float = 10.0) -> dict[str, Any]:
    return json.loads(await asyncio.wait_for(ws.recv(), limit))


async def until(ws: ClientConnection, predicate: Any, limit: float = 20.0) -> list[dict[str, Any]]:
    seen: list[dict[str, Any]] = []
    deadline = asyncio.get_running_loop().time() + limit
    while not seen or not predicate(seen[-1]):
        seen.append(await recv(ws, max(0.1, deadline - asyncio.get_running_loop().time())))
    return seen


def is_reply(cid: int) -> Any:
    return lambda m: m.get("id") == cid and m.get("type") in ("success", "error")


def root_end(m: dict[str, Any]) -> bool:
    return (
        m.get("method") == "lifecycle"
        and m["params"]["namespace"] == []
        and m["params"]["data"]["event"] in ("completed", "failed", "interrupted")
    )


async def close_code(url: str, **kwargs: Any) -> int | None:
    async with connect(url, **kwargs) as ws:
        with contextlib.suppress(ConnectionClosed):
            await asyncio.wait_for(ws.recv(), 10)
        return ws.close_code


async def test_commands_and_subscriptions_on_one_socket(ts_server: Server) -> None:
    tid = new_thread()
    async with connect(ws_url(ts_server, tid), additional_headers={"x-api-key": KEY_A}) as ws:
        await ws.send("not json")
        assert await recv(ws) == {
            "type": "error",
            "id": None,
            "error": "invalid_argument",
            "message": "Protocol commands must be valid JSON.",
        }
        await ws.send(json.dumps({"channels": ["values"]}))  # a bare subscribe body is not a command
        assert (await recv(ws))["message"] == "Protocol commands must include an integer id and string method."
        await ws.send(
            json.dumps({"id": 1, "method": "run.start", "params": {"assistant_id": "llm", "input": {"messages": []}}})
        )
        started = await until(ws, is_reply(1))
        run_id = started[-1]["result"]["run_id"]
        await ws.send(
            json.dumps({"id": 2, "method": "subscription.subscribe", "params": {"channels": ["messages", "lifecycle"]}})
        )
        seen = await until(ws, root_end)
        reply = next(m for m in seen if m.get("id") == 2)
        sub = reply["result"]["subscription_id"]
        events = [m for m in seen if m.get("type") == "event"]
        assert events[0]["params"]["data"] == {"event": "running", "graph_name": "llm", "run_id": run_id}
        assert {e["method"] for e in events} == {"messages", "lifecycle"}
        assert len({e["event_id"] for e in events}) == len(events)  # each event once per socket
        await ws.send(json.dumps({"id": 3, "method": "subscription.unsubscribe", "params": {"subscription_id": sub}}))
        assert (await until(ws, is_reply(3)))[-1]["result"] == {}
        await ws.send(
            json.dumps({"id": 4, "method": "subscription.unsubscribe", "params": {"subscription_id": "nope"}})
        )
        assert (await until(ws, is_reply(4)))[-1]["error"] == "no_such_subscription"
        await ws.send(json.dumps({"id": 5, "method": "bogus", "params": {}}))
        assert (await until(ws, is_reply(5)))[-1]["error"] == "unknown_command"
        await ws.send(json.dumps({"id": 6, "method": "subscription.subscribe", "params": {"channels": ["nope"]}}))
        assert (await until(ws, is_reply(6)))[-1]["error"] == "invalid_argument"
        await ws.send(json.dumps({"id": 7, "method": "agent.getTree", "params": {}}))
        assert (await until(ws, is_reply(7)))[-1]["result"]["tree"]["status"] == "completed"
        # Python's pattern: `since` inside the subscribe params replays exactly what follows it
        cursor = events[2]["seq"]
        await ws.send(
            json.dumps(
                {
                    "id": 8,
                    "method": "subscription.subscribe",
                    "params": {"channels": ["lifecycle", "messages"], "since": cursor},
                }
            )
        )
        replay = await until(ws, is_reply(8))
        assert [m["seq"] for m in replay if m.get("type") == "event"] == [e["seq"] for e in events if e["seq"] > cursor]
        assert replay[-1]["result"]["replayed_events"] == len(replay) - 1


async def test_close_codes_and_cookie_credentials(ts_server: Server) -> None:
    tid = new_thread()
    assert await close_code(ws_url(ts_server, tid)) == 4401
    assert await close_code(ws_url(ts_server, tid), additional_headers={"x-api-key": "wrong"}) == 4401
    assert await close_code(ws_url(ts_server, "not-a-uuid"), additional_headers={"x-api-key": KEY_A}) == 4422
    host = ts_server.url.removeprefix("http://")
    foreign = {"cookie": f"x-api-key={KEY_A}", "origin": "http://evil.example"}
    assert await close_code(ws_url(ts_server, tid), additional_headers=foreign) == 4403
    same_site = {"cookie": f"x-api-key={KEY_A}", "origin": f"http://{host}"}
    async with connect(ws_url(ts_server, tid), additional_headers=same_site) as ws:  # what a browser sends
        await ws.send(
            json.dumps({"id": 1, "method": "run.start", "params": {"assistant_id": "trivial", "input": {"log": []}}})
        )
        await ws.send(json.dumps({"id": 2, "method": "subscription.subscribe", "params": {"channels": ["lifecycle"]}}))
        seen = await until(ws, root_end)
        assert seen[-1]["params"]["data"]["event"] == "completed"


async def test_another_tenants_thread_is_404_everywhere(ts_server: Server) -> None:
    async with http(ts_server.url) as a, http(ts_server.url, KEY_B) as b:
        tid = new_thread()
        await start(a, tid, "interrupter", {"log": []})
        stream = await open_stream(a, tid, channels=["lifecycle", "input"])
        await stream.terminals(1)
        ask = next(e for e in stream.events if e["method"] == "input.requested")["params"]["data"]
        for method, params in [
            ("run.start", {"assistant_id": "trivial"}),
            ("input.respond", {"interrupt_id": ask["interrupt_id"], "namespace": [], "response": "x"}),
            ("state.get", {"namespace": []}),
            ("state.listCheckpoints", {}),
            ("agent.getTree", {}),
        ]:
            r = await b.post(f"/threads/{tid}/commands", json={"id": 1, "method": method, "params": params})
            assert r.status_code == 404, (method, r.text)
        assert (await b.post(f"/threads/{tid}/stream/events", json={"channels": ["values"]})).status_code == 404
        assert (await b.get(f"/threads/{tid}")).status_code == 404
        assert await close_code(ws_url(ts_server, tid), additional_headers={"x-api-key": KEY_B}) == 4404
        # a stream opened on a free id that another tenant then claims ends without showing anything
        claimed = new_thread()
        watcher = await open_stream(b, claimed)
        await start(a, claimed, "trivial", {"log": ["secret"]})
        await asyncio.wait_for(watcher._task, 10)
        assert watcher.events == []
        reply = await command(
            a, tid, "input.respond", {"interrupt_id": ask["interrupt_id"], "namespace": [], "response": "ok"}
        )
        assert reply["type"] == "success"  # the owner still can
        await stream.close()
