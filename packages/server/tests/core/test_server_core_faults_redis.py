"""Redis blips delay events, they do not fail runs (issue 12).

The server names its Redis connections ``cogni:<key prefix>``; the test kills only those (found with
``CLIENT LIST``, killed by ``CLIENT KILL ID``), over and over, while six runs stream. Every run must
succeed and every SSE stream must deliver every event exactly once, in order.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from langgraph_sdk import get_client
from langgraph_sdk.client import LangGraphClient

from testsupport import free_port, fresh_database

from .conftest import KEY_A
from .faults_support import TcpProxy, start_faults_server

REDIS_URL = "redis://127.0.0.1:6379/0"
RUNS = 6
TICKS = 60


def kill_named(client: redis.Redis, name: str) -> int:
    """Kill our server's connections only: never anybody else's on this shared Redis."""
    ids = [c["id"] for c in client.client_list() if c.get("name") == name]
    killed = 0
    for client_id in ids:
        with contextlib.suppress(redis.ResponseError):  # gone already
            killed += int(client.execute_command("CLIENT", "KILL", "ID", client_id))
    return killed


@pytest.fixture
def prefix() -> Iterator[str]:
    value = f"cogni-blip-{uuid.uuid4().hex[:8]}"
    yield value
    r = redis.Redis.from_url(REDIS_URL)
    keys = list(r.scan_iter(match=f"{value}:*"))
    if keys:
        r.delete(*keys)
    r.close()


async def _stream(client: LangGraphClient) -> tuple[str, str, list[tuple[str, Any]]]:
    tid = (await client.threads.create())["thread_id"]
    parts = [
        (p.event, p.data)
        async for p in client.runs.stream(
            tid, "ticker", input={"n": TICKS, "delay": 0.04}, stream_mode=["custom", "values"]
        )
    ]
    return tid, parts[0][1]["run_id"] if parts and parts[0][0] == "metadata" else "", parts


async def test_dropped_redis_connections_delay_events_but_fail_no_run(prefix: str) -> None:
    name = f"cogni:{prefix}"
    env = {"REDIS_URL": REDIS_URL, "COGNI_REDIS_KEY_PREFIX": prefix, "COGNI_BROKER_OUTAGE_SECONDS": "20"}
    admin = redis.Redis.from_url(REDIS_URL)
    with fresh_database("cogni_server_core_redisblip") as db:
        port = free_port()
        proc = start_faults_server(db, port, name="redis-blips", **env)
        client = get_client(url=f"http://127.0.0.1:{port}", api_key=KEY_A)
        kills: list[int] = []
        try:
            assert any(c.get("name") == name for c in admin.client_list()), "the server's connections are not named"
            streams = [asyncio.create_task(_stream(client)) for _ in range(RUNS)]
            await asyncio.sleep(0.5)
            while not all(s.done() for s in streams) and len(kills) < 60:
                kills.append(kill_named(admin, name))
                await asyncio.sleep(0.25)
            results = await asyncio.wait_for(asyncio.gather(*streams), 120)
            assert sum(kills) >= 10, kills  # the blips really happened
            for tid, run_id, parts in results:
                events = [event for event, _ in parts]
                assert events[0] == "metadata" and "error" not in events, (events, proc.output()[-3000:])
                assert events.count("metadata") == 1, events  # a retried write is not written twice
                ticks = [data["tick"] for event, data in parts if event == "custom"]
                assert ticks == list(range(TICKS)), ticks  # every event once, in order
                assert parts[-1] == ("values", {"n": TICKS, "delay": 0.04, "ticks": TICKS})
                run = await client.runs.get(tid, run_id)
                assert run["status"] == "success", run
            log = proc.output()
            assert "Traceback" not in log, log[-4000:]  # a cut read is a warning, not an unhandled error
        finally:
            await client.aclose()
            proc.stop()
            admin.close()


async def test_an_outage_past_the_limit_fails_the_run_and_ends_its_stream(prefix: str) -> None:
    proxy = TcpProxy(6379)
    env = {
        "REDIS_URL": f"redis://{proxy.url_host_port}/0",
        "COGNI_REDIS_KEY_PREFIX": prefix,
        "COGNI_BROKER_OUTAGE_SECONDS": "1.5",
    }
    try:
        with fresh_database("cogni_server_core_redisdown") as db:
            port = free_port()
            proc = start_faults_server(db, port, name="redis-down", **env)
            client = get_client(url=f"http://127.0.0.1:{port}", api_key=KEY_A)
            try:
                tid = (await client.threads.create())["thread_id"]
                parts: list[tuple[str, Any]] = []

                async def follow() -> None:
                    async for p in client.runs.stream(
                        tid, "ticker", input={"n": 200, "delay": 0.02}, stream_mode="custom"
                    ):
                        parts.append((p.event, p.data))
                        if len(parts) == 5:
                            proxy.cut()  # and it stays down

                await asyncio.wait_for(follow(), 60)
                assert parts[-1][0] == "error" and parts[-1][1]["error"] == "BrokerUnavailable", parts[-3:]
                run_id = parts[0][1]["run_id"]
                deadline = asyncio.get_running_loop().time() + 30
                while (run := await client.runs.get(tid, run_id))["status"] in ("pending", "running"):
                    assert asyncio.get_running_loop().time() < deadline, run
                    await asyncio.sleep(0.2)
                assert run["status"] == "error"  # failed, and not left running
            finally:
                await client.aclose()
                proc.stop()
    finally:
        proxy.close()
