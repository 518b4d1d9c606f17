"""The server freezes its start-up heap out of the garbage collector's passes and reports its pauses.

A full collection walks every tracked object; after start-up that is ~220,000 objects of LangGraph,
LangChain and the graphs, 80-250 ms of a stalled loop per pass on these machines. Frozen, later passes
walk only what traffic allocated."""

from __future__ import annotations

import re

import httpx
from langgraph_sdk.client import LangGraphClient

from .conftest import Server

HI = {"messages": [{"role": "user", "content": "hi"}]}


def metric(text: str, name: str, labels: str = "") -> float:
    match = re.search(rf"^{re.escape(name + labels)} (\S+)$", text, re.MULTILINE)
    assert match, f"{name}{labels} missing from /metrics"
    return float(match.group(1))


async def test_start_up_objects_are_frozen_and_pauses_are_measured(server: Server, client: LangGraphClient) -> None:
    for _ in range(20):
        thread = await client.threads.create()
        await client.runs.wait(thread["thread_id"], "echo", input=HI)
    async with httpx.AsyncClient(timeout=10) as http:
        text = (await http.get(f"{server.url}/metrics")).text
    assert metric(text, "cogni_gc_frozen_objects") > 100_000  # the libraries' objects, not a handful
    assert metric(text, "cogni_gc_pause_seconds_count", '{generation="2"}') >= 1  # the collection before the freeze
    assert metric(text, "cogni_gc_pause_seconds_count", '{generation="0"}') >= 1  # traffic's young collections
