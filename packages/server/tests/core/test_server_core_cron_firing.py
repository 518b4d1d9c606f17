"""The cron scheduler, with two server processes on one database: every tick fires exactly once,
missed ticks fire once, disabled and ended crons stay quiet, and cron runs deliver their webhooks.
Schedules tick every second (``COGNI_CRON_ALLOW_SECONDS``) so ten ticks take ten seconds."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from langgraph_sdk import get_client
from langgraph_sdk.client import LangGraphClient

from testsupport import free_port, fresh_database

from .conftest import KEY_A
from .jobs_support import Receiver, eventually, receiver, start_jobs_server, write_project

EVERY_SECOND = "* * * * * *"


@dataclass
class Pair:
    urls: list[str]
    database_url: str
    hooks: Receiver


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    project = write_project(tmp_path_factory.mktemp("cron-project"))
    with fresh_database("cogni_cron_firing") as db, receiver() as hooks:
        procs = []
        try:
            for name in ("cron-a", "cron-b"):
                port = free_port()
                procs.append((start_jobs_server(db, port, project, name=name), f"http://127.0.0.1:{port}"))
            yield Pair([url for _, url in procs], db, hooks)
        finally:
            for proc, _ in procs:
                proc.stop()


@pytest.fixture
async def client(pair: Pair) -> AsyncIterator[LangGraphClient]:
    c = get_client(url=pair.urls[0], api_key=KEY_A)
    try:
        yield c
    finally:
        await c.aclose()


async def _runs(client: LangGraphClient, thread_id: str) -> list[dict[str, object]]:
    return [dict(r) for r in await client.runs.list(thread_id, limit=100)]


async def test_ten_ticks_on_two_processes_make_ten_runs_and_ten_webhooks(client: LangGraphClient, pair: Pair) -> None:
    tid = (await client.threads.create())["thread_id"]
    path = f"/cron/{uuid.uuid4().hex}"
    cron = await client.crons.create_for_thread(
        tid, "echo", schedule=EVERY_SECOND, input={"messages": []}, webhook=pair.hooks.url(path)
    )
    first = datetime.fromisoformat(cron["next_run_date"])
    end = first + timedelta(seconds=9.5)  # ticks first, first+1s, ..., first+9s
    await client.crons.update(cron["cron_id"], end_time=end)
    await asyncio.sleep(max(0.0, (end - datetime.now(UTC)).total_seconds()) + 2.0)
    runs = await _runs(client, tid)
    assert len(runs) == 10, [r["created_at"] for r in runs]
    for run in runs:
        assert run["kwargs"]["config"]["configurable"]["cron_id"] == cron["cron_id"]  # type: ignore[index]
    deliveries = pair.hooks.wait(path, 10)
    await asyncio.sleep(1.0)
    deliveries = pair.hooks.on(path)
    assert len(deliveries) == 10
    assert {d.json()["run_id"] for d in deliveries} == {r["run_id"] for r in runs}
    assert len({d.headers["webhook-id"] for d in deliveries}) == 10
    cron_now = (await client.crons.search(thread_id=tid))[0]
    assert datetime.fromisoformat(cron_now["next_run_date"]) > end  # left after the end, not deleted


async def test_stateless_crons_keep_or_delete_their_threads(client: LangGraphClient, pair: Pair) -> None:
    for keep in (True, False):
        path = f"/stateless/{uuid.uuid4().hex}"
        cron = await client.crons.create(
            "echo",
            schedule=EVERY_SECOND,
            input={"messages": [{"role": "user", "content": "tick"}]},
            metadata={"from": "cron"},
            on_run_completed="keep" if keep else "delete",
            webhook=pair.hooks.url(path),
        )
        got = pair.hooks.wait(path, 2)
        await client.crons.delete(cron["cron_id"])
        for delivery in got[:2]:
            body = delivery.json()
            assert body["status"] == "success" and body["metadata"]["from"] == "cron"
            assert body["values"]["messages"][-1]["content"] == "echo: tick"  # the outbox kept the values
            assert body["kwargs"]["temporary"] is (not keep)
            threads = await client.threads.search(ids=[body["thread_id"]])
            assert len(threads) == (1 if keep else 0)


async def test_a_missed_tick_fires_once(client: LangGraphClient, pair: Pair) -> None:
    tid = (await client.threads.create())["thread_id"]
    if not 5 <= datetime.now(UTC).second <= 50:  # keep clear of a minute tick falling due meanwhile
        await asyncio.sleep(10)
    cron = await client.crons.create_for_thread(tid, "echo", schedule="* * * * *", input={"messages": []})
    # as if every process had been down for ten minutes: ten ticks were missed
    with psycopg.connect(pair.database_url, autocommit=True) as conn:
        conn.execute(
            "UPDATE crons SET next_run_date = now() - interval '10 minutes' WHERE cron_id = %s", (cron["cron_id"],)
        )

    async def fired() -> bool:
        return bool(await _runs(client, tid))

    assert await eventually(fired, 10)
    await asyncio.sleep(1.5)
    assert len(await _runs(client, tid)) == 1
    after = (await client.crons.search(thread_id=tid))[0]
    nxt = datetime.fromisoformat(after["next_run_date"])
    assert datetime.now(UTC) < nxt <= datetime.now(UTC) + timedelta(seconds=61) and nxt.second == 0


async def test_disabled_and_ended_crons_do_not_fire(client: LangGraphClient) -> None:
    tid = (await client.threads.create())["thread_id"]
    off = await client.crons.create_for_thread(tid, "echo", schedule=EVERY_SECOND, enabled=False)
    await client.crons.create_for_thread(
        tid, "echo", schedule=EVERY_SECOND, end_time=datetime.now(UTC) - timedelta(minutes=1)
    )
    await asyncio.sleep(2.5)
    assert await _runs(client, tid) == []
    await client.crons.update(off["cron_id"], enabled=True)

    async def fired() -> bool:
        return bool(await _runs(client, tid))

    assert await eventually(fired, 10)
    await client.crons.update(off["cron_id"], enabled=False)


async def test_reject_strategy_skips_the_tick_of_a_busy_thread(client: LangGraphClient) -> None:
    tid = (await client.threads.create())["thread_id"]
    run = await client.runs.create(tid, "slow", input={"delay": 0.5, "steps": 6})
    cron = await client.crons.create_for_thread(
        tid, "echo", schedule=EVERY_SECOND, input={"messages": []}, multitask_strategy="reject"
    )
    await asyncio.sleep(2.0)
    await client.crons.delete(cron["cron_id"])
    runs = await _runs(client, tid)
    assert [r["run_id"] for r in runs if r["assistant_id"] != run["assistant_id"]] == []
