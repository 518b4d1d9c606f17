"""A tenant purge racing the tenant's own writes, in-process against a real Postgres (the purge service
as the route and the CLI call it): a run being created when the purge starts is either refused by the
fence or seen and deleted by the purge, never left behind an answer of ``done``; a running run the purge
did not know about is never deleted under its worker's feet; and a sweeper whose list of unfinished
purges is stale does not purge again a tenant that started afresh after its purge was done."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import psycopg
import pytest
from langgraph.checkpoint.base import empty_checkpoint
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from cogni_server.bootstrap import authenticator_for, running_server
from cogni_server.config import Settings
from cogni_server.graphs import GraphRegistry
from cogni_server.services import purge as purge_service
from cogni_server.services import state as state_service
from cogni_server.services.context import ServerContext
from cogni_server.storage import purge as purge_repo
from cogni_server.storage import runs as runs_repo
from testsupport import fresh_database

from .purge_support import PURGE_PROJECT, wait_for

pytestmark = pytest.mark.integration

WAITING_FOR_A_LOCK = "SELECT count(*) AS n FROM pg_locks WHERE NOT granted"  # a row's or an advisory lock


@pytest.fixture(scope="module")
def database() -> Any:
    with fresh_database("cogni_purge_race") as db:
        yield db


@pytest.fixture
async def ctx(database: str) -> AsyncIterator[ServerContext]:
    settings = Settings.model_validate(
        {"database_url": database, "config_path": PURGE_PROJECT, "purge_stop_seconds": 1.0, "redis_url": ""}
    )
    registry = GraphRegistry.from_config(PURGE_PROJECT)
    async with running_server(
        settings, database, registry=registry, authenticator=authenticator_for(settings), start_workers=False
    ) as context:
        yield context


def new_run(tenant: str, thread_id: uuid.UUID, ctx: ServerContext) -> runs_repo.NewRun:
    echo = ctx.system_assistants["echo"]
    return runs_repo.NewRun(
        run_id=uuid.uuid4(),
        thread_id=thread_id,
        assistant_id=echo["assistant_id"],
        graph_id="echo",
        owner=tenant,
        metadata={},
        kwargs={"input": {}},
        multitask_strategy="enqueue",
        if_not_exists="create",
        after_seconds=0,
        thread_metadata={},
    )


@asynccontextmanager
async def open_transaction(database: str) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
    """A connection inside a transaction that stays open until the block ends (then commits)."""
    connect = psycopg.AsyncConnection.connect(database, autocommit=True, row_factory=dict_row)
    async with await connect as conn, conn.transaction():
        yield conn


async def rows_of(database: str, tenant: str, thread_id: uuid.UUID) -> dict[str, int]:
    async with await psycopg.AsyncConnection.connect(database, autocommit=True) as conn:
        counts = {}
        for table, where, param in (
            ("threads", "owner = %s", tenant),
            ("runs", "owner = %s", tenant),
            ("checkpoints", "thread_id = %s", str(thread_id)),
        ):
            cur = await conn.execute(f"SELECT count(*) FROM {table} WHERE {where}", (param,))  # type: ignore[arg-type]
            row = await cur.fetchone()
            counts[table] = int(row[0]) if row else 0
        return counts


async def until_blocked_or_done(database: str, task: asyncio.Task[Any]) -> None:
    """Until the purge has answered or waits for a lock (the creator's transaction is still open)."""

    def settled() -> bool:
        if task.done():
            return True
        with psycopg.connect(database, autocommit=True) as conn:
            row = conn.execute(WAITING_FOR_A_LOCK).fetchone()
        return bool(row and row[0])

    await asyncio.to_thread(wait_for, settled, "the purge to answer or to wait for the creator", 10.0)


async def test_a_run_created_on_a_new_thread_as_the_purge_starts_is_not_left_behind(
    ctx: ServerContext, database: str
) -> None:
    tenant = f"race-{uuid.uuid4().hex[:8]}"
    thread_id = uuid.uuid4()
    async with open_transaction(database) as creator:
        # the run's transaction has inserted its thread and its run (past the fence: no purge yet) ...
        created = await runs_repo.create(creator, new_run(tenant, thread_id, ctx), worker_id=None, lease_seconds=30)
        assert created.run["status"] == "pending"
        # ... when the purge starts; the run's transaction commits only after that
        purge = asyncio.create_task(purge_service.purge_tenant(ctx, tenant, stop_seconds=1.0))
        await until_blocked_or_done(database, purge)
    result = await asyncio.wait_for(purge, 30)
    assert result.status == "done"
    assert await rows_of(database, tenant, thread_id) == {"threads": 0, "runs": 0, "checkpoints": 0}, (
        "the purge answered done, yet the tenant's run and thread created as it started are still there"
    )
    assert result.counts["threads"] == 1 and result.counts["runs"] == 1


async def test_a_run_started_on_an_idle_thread_as_the_purge_starts_is_stopped_not_deleted_under_its_worker(
    ctx: ServerContext, database: str
) -> None:
    tenant = f"race-{uuid.uuid4().hex[:8]}"
    thread_id = uuid.uuid4()
    async with ctx.pool.connection() as conn:
        await conn.execute("INSERT INTO threads (thread_id, owner) VALUES (%s, %s)", (thread_id, tenant))
    run = new_run(tenant, thread_id, ctx)
    async with open_transaction(database) as creator:
        # a local worker slot is free: the run is inserted already running (the thread's row locked)
        created = await runs_repo.create(creator, run, worker_id="worker-race", lease_seconds=30)
        assert created.started and created.run["status"] == "running"
        purge = asyncio.create_task(purge_service.purge_tenant(ctx, tenant, stop_seconds=1.0))
        await until_blocked_or_done(database, purge)
    first = await asyncio.wait_for(purge, 30)
    # the run executes on its worker and was never told to stop before the purge started: the purge
    # must not answer done (and delete its thread) while it still runs
    assert first.status == "in_progress", f"the purge answered {first.status} while a run of the tenant was running"
    left = await rows_of(database, tenant, thread_id)
    assert left["threads"] == 1 and left["runs"] == 1
    # the worker's next checkpoint is refused (the thread is still there, its tenant fenced)
    config: Any = {"configurable": {"thread_id": str(thread_id), "checkpoint_ns": ""}}
    with pytest.raises(psycopg.Error) as refused:
        await ctx.checkpointer.aput(config, empty_checkpoint(), {"source": "loop", "step": 0}, {})
    assert purge_repo.is_fence_error(refused.value)
    # the run stops (its worker saw the cancel); the next pass finishes the purge
    async with ctx.pool.connection() as conn:
        await conn.execute("UPDATE runs SET status = 'interrupted', worker_id = NULL WHERE run_id = %s", (run.run_id,))
    second = await purge_service.purge_tenant(ctx, tenant, stop_seconds=1.0)
    assert second.status == "done"
    assert await rows_of(database, tenant, thread_id) == {"threads": 0, "runs": 0, "checkpoints": 0}
    assert second.counts["threads"] == 1 and second.counts["runs"] == 1


async def test_a_sweeper_with_a_stale_list_does_not_purge_a_tenant_that_started_afresh(
    ctx: ServerContext, database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    tenant = f"race-{uuid.uuid4().hex[:8]}"
    async with ctx.pool.connection() as conn:
        await conn.execute("INSERT INTO threads (thread_id, owner) VALUES (%s, %s)", (uuid.uuid4(), tenant))
    # the sweeper read the list of unfinished purges while this one was in progress ...
    stale = [tenant]

    async def unfinished(conn: Any, limit: int = 100) -> list[str]:
        return list(stale)

    monkeypatch.setattr(purge_repo, "unfinished", unfinished)
    # ... then the purge was finished by another process, and the tenant started afresh
    done = await purge_service.purge_tenant(ctx, tenant, stop_seconds=1.0)
    assert done.status == "done" and done.counts["threads"] == 1
    fresh = uuid.uuid4()
    async with ctx.pool.connection() as conn:
        await conn.execute("INSERT INTO threads (thread_id, owner) VALUES (%s, %s)", (fresh, tenant))
        job = await purge_repo.get_job(conn, tenant)
    assert job is not None
    await purge_service.PurgeSweeper(ctx).sweep()
    left = await rows_of(database, tenant, fresh)
    assert left["threads"] == 1, "the sweeper purged again a tenant whose purge was already done"
    async with ctx.pool.connection() as conn:
        after = await purge_repo.get_job(conn, tenant)
    assert after is not None and after["status"] == "done" and after["passes"] == job["passes"]


async def echo_thread(ctx: ServerContext, tenant: str, thread_id: uuid.UUID) -> None:
    """An idle thread of the echo graph, as one that has run once (state updates need its graph)."""
    async with ctx.pool.connection() as conn:
        await conn.execute(
            "INSERT INTO threads (thread_id, owner, metadata) VALUES (%s, %s, %s)",
            (thread_id, tenant, Jsonb({"graph_id": "echo"})),
        )


async def test_a_state_update_in_flight_as_the_purge_starts_leaves_no_orphan_checkpoint(
    ctx: ServerContext, database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`threads.update_state` writes a checkpoint outside any run, through the checkpointer's own
    connection; the purge must wait for it (and then delete it), not answer done and leave it behind."""
    tenant = f"race-{uuid.uuid4().hex[:8]}"
    thread_id = uuid.uuid4()
    await echo_thread(ctx, tenant, thread_id)
    entered, release = asyncio.Event(), asyncio.Event()
    write = ctx.checkpointer.aput

    async def held_write(*args: Any, **kwargs: Any) -> Any:
        entered.set()
        await release.wait()  # the write is in flight, not committed yet
        return await write(*args, **kwargs)

    monkeypatch.setattr(ctx.checkpointer, "aput", held_write)
    update = asyncio.create_task(
        state_service.update_state(
            ctx, tenant, thread_id, values={"messages": [("user", "late")]}, as_node="respond", checkpoint=None
        )
    )
    await asyncio.wait_for(entered.wait(), 10)
    purge = asyncio.create_task(purge_service.purge_tenant(ctx, tenant, stop_seconds=1.0))
    await until_blocked_or_done(database, purge)
    assert not purge.done(), "the purge did not wait for the state update in flight"
    release.set()
    await asyncio.wait_for(update, 10)
    result = await asyncio.wait_for(purge, 30)
    assert result.status == "done"
    assert await rows_of(database, tenant, thread_id) == {"threads": 0, "runs": 0, "checkpoints": 0}


async def test_a_state_update_after_the_purge_started_is_refused(ctx: ServerContext, database: str) -> None:
    tenant = f"race-{uuid.uuid4().hex[:8]}"
    thread_id = uuid.uuid4()
    await echo_thread(ctx, tenant, thread_id)
    async with ctx.pool.connection() as conn:
        await conn.execute(
            "INSERT INTO tenant_purges (tenant, store_label, status) VALUES (%s, %s, 'in_progress')", (tenant, tenant)
        )
    with pytest.raises(psycopg.Error) as refused:
        await state_service.update_state(
            ctx, tenant, thread_id, values={"messages": [("user", "late")]}, as_node="respond", checkpoint=None
        )
    assert purge_repo.is_fence_error(refused.value)
    assert (await rows_of(database, tenant, thread_id))["checkpoints"] == 0
    async with ctx.pool.connection() as conn:
        await conn.execute("DELETE FROM tenant_purges WHERE tenant = %s", (tenant,))
