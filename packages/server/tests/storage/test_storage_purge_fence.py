"""The purge fence against a real Postgres: while a tenant's purge is in progress the database refuses
its new rows (threads, runs, assistants, crons), checkpoint writes on its threads and store writes
under its label, through the real checkpointer and store; other tenants write as usual; once the
purge is done the tenant writes again."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import psycopg
import pytest
from langgraph.checkpoint.base import empty_checkpoint
from psycopg_pool import AsyncConnectionPool

from cogni_server.storage import purge as purge_repo
from cogni_server.storage.checkpointer import PooledPostgresSaver, setup_checkpointer
from cogni_server.storage.store import StoreBackend, open_store, tenant_label

pytestmark = pytest.mark.integration


@pytest.fixture
async def fenced(pool: AsyncConnectionPool[Any]) -> AsyncIterator[tuple[PooledPostgresSaver, StoreBackend]]:
    saver = PooledPostgresSaver(pool)
    await setup_checkpointer(pool, saver)
    backend = await open_store(pool, index=None, ttl={})
    try:
        await purge_repo.install_fences(pool)
        assert await purge_repo.install_fences(pool) == []  # installed once
        yield saver, backend
    finally:
        await backend.close()


async def _new_thread(pool: AsyncConnectionPool[Any], owner: str) -> uuid.UUID:
    thread = uuid.uuid4()
    async with pool.connection() as conn:
        await conn.execute("INSERT INTO threads (thread_id, owner) VALUES (%s, %s)", (thread, owner))
    return thread


async def _checkpoint(saver: PooledPostgresSaver, thread: uuid.UUID) -> None:
    config = {"configurable": {"thread_id": str(thread), "checkpoint_ns": ""}}
    await saver.aput(config, empty_checkpoint(), {"source": "input", "step": -1}, {})  # type: ignore[arg-type]


async def test_writes_of_a_tenant_under_purge_are_refused(
    pool: AsyncConnectionPool[Any], fenced: tuple[PooledPostgresSaver, StoreBackend]
) -> None:
    saver, backend = fenced
    tenant, other = f"fenced-{uuid.uuid4().hex[:6]}", f"free-{uuid.uuid4().hex[:6]}"
    thread, other_thread = await _new_thread(pool, tenant), await _new_thread(pool, other)
    async with pool.connection() as conn:
        await purge_repo.start_job(conn, tenant, tenant_label(tenant))

    with pytest.raises(psycopg.Error) as refused:
        await _checkpoint(saver, thread)
    assert purge_repo.is_fence_error(refused.value) and "being purged" in str(refused.value)
    with pytest.raises(psycopg.Error) as refused:
        await backend.for_tenant(tenant).aput(("notes",), "k", {"v": 1})
    assert purge_repo.is_fence_error(refused.value)
    async with pool.connection() as conn:
        for statement, params in (
            ("INSERT INTO threads (thread_id, owner) VALUES (%s, %s)", (uuid.uuid4(), tenant)),
            (
                "INSERT INTO assistants (assistant_id, owner, graph_id, name) VALUES (%s, %s, 'g', 'n')",
                (uuid.uuid4(), tenant),
            ),
        ):
            with pytest.raises(psycopg.Error) as refused:
                await conn.execute(statement, params)
            assert purge_repo.is_fence_error(refused.value)

    # the other tenant is not fenced
    await _checkpoint(saver, other_thread)
    await backend.for_tenant(other).aput(("notes",), "k", {"v": 1})

    async with pool.connection() as conn:
        await purge_repo.end_pass(conn, tenant, {}, done=True)
    await _checkpoint(saver, thread)
    await backend.for_tenant(tenant).aput(("notes",), "k", {"v": 2})
    assert (await backend.for_tenant(tenant).aget(("notes",), "k")).value == {"v": 2}  # type: ignore[union-attr]
