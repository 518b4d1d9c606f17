"""Resumable streams: reconnect to the Location with Last-Event-ID (or -1) and miss nothing."""

from __future__ import annotations

import httpx
from langgraph_sdk.client import LangGraphClient
from langgraph_sdk.sse import SSEDecoder

from .conftest import KEY_A, Server


async def _read(response: httpx.Response, limit: int | None = None) -> list[tuple[str, object, str | None]]:
    decoder = SSEDecoder()
    out: list[tuple[str, object, str | None]] = []
    async for line in response.aiter_lines():
        part = decoder.decode(line.encode().rstrip(b"\n"))
        if part is not None and part.event:
            out.append((part.event, part.data, part.id))
            if limit is not None and len(out) >= limit:
                break
    return out


async def test_reconnect_with_last_event_id_and_minus_one(server: Server, client: LangGraphClient) -> None:
    tid = (await client.threads.create())["thread_id"]
    body = {
        "assistant_id": "slow",
        "input": {"delay": 0.15, "steps": 6},
        "stream_resumable": True,
        "stream_mode": ["updates"],
    }
    async with httpx.AsyncClient(base_url=server.url, headers={"x-api-key": KEY_A}, timeout=30) as http:
        async with http.stream("POST", f"/threads/{tid}/runs/stream", json=body) as response:
            location = response.headers["location"]
            first = await _read(response, limit=3)  # metadata + two updates, then drop the connection
        assert first[0][0] == "metadata"
        last_id = first[-1][2]
        assert last_id is not None
        async with http.stream("GET", location, headers={"Last-Event-ID": last_id}) as response:
            rest = await _read(response)
        seen_ids = [e[2] for e in first + rest]
        assert len(seen_ids) == len(set(seen_ids))  # nothing twice
        updates = [e for e in first + rest if e[0] == "updates"]
        assert [u[1]["tick"]["done"] for u in updates] == [[i] for i in range(6)]  # type: ignore[index]
        async with http.stream("GET", location, headers={"Last-Event-ID": "-1"}) as response:
            replay = await _read(response)
        assert [e[2] for e in replay] == seen_ids


async def test_sdk_join_stream_from_start(client: LangGraphClient) -> None:
    tid = (await client.threads.create())["thread_id"]
    run = await client.runs.create(tid, "custom", input={"n": 2}, stream_mode="custom", stream_resumable=True)
    await client.runs.join(tid, run["run_id"])
    parts = [p async for p in client.runs.join_stream(tid, run["run_id"], last_event_id="-1")]
    assert parts[0].event == "metadata"
    assert [p.data for p in parts if p.event == "custom"] == [{"progress": 0}, {"progress": 1}]
    assert all(p.id for p in parts)


async def test_non_resumable_stream_has_no_ids(client: LangGraphClient) -> None:
    tid = (await client.threads.create())["thread_id"]
    parts = [p async for p in client.runs.stream(tid, "echo", input={"messages": []})]
    assert parts and all(p.id is None for p in parts)
