"""SQL of a tenant purge: the job row, the fence, and one delete per table the server owns.

Which table holds a tenant's rows, and how they are found:

- ``threads``, ``runs``, ``assistants``, ``crons``, ``webhook_outbox``: the ``owner`` column;
- ``assistant_versions``: through its assistant (owner);
- ``checkpoints``, ``checkpoint_blobs``, ``checkpoint_writes``: ``thread_id``, the text of the id of
  a thread the tenant owns (the rule of ``services/deletion.py``: a thread's checkpoints go with it);
- ``store`` (and ``store_vectors``, which cascades from it): the namespace's hidden first label
  (``storage/store/tenant.py``), i.e. ``prefix`` equal to it or starting with it and a ``.``.

Every table of the schema must be listed here, either in ``TENANT_TABLES`` or in ``OTHER_TABLES``
with why it holds no tenant data: the purge test compares these with the database catalogue, so a
table added later cannot be missed silently.
"""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from cogni_server.storage.pool import Conn

# table -> how its rows are attributed to a tenant (the order in which a pass deletes them)
TENANT_TABLES: dict[str, str] = {
    "crons": "owner",
    "checkpoint_writes": "thread_id of the tenant's threads",
    "checkpoint_blobs": "thread_id of the tenant's threads",
    "checkpoints": "thread_id of the tenant's threads",
    "runs": "owner (and cascade from threads)",
    "threads": "owner",
    "assistant_versions": "assistant_id of the tenant's assistants",
    "assistants": "owner",
    "store_vectors": "prefix under the tenant's label (cascades from store; only with store.index)",
    "store": "prefix under the tenant's label",
    "webhook_outbox": "owner",
}
# tables without tenant data, and why
OTHER_TABLES: dict[str, str] = {
    "cogni_schema_migrations": "applied migration versions",
    "checkpoint_migrations": "the checkpointer's applied migration versions",
    "store_migrations": "the store's applied migration versions",
    "vector_migrations": "the store's applied vector migration versions (only with store.index)",
    "tenant_purges": "the purge record itself (tenant name, counts, times; no content): kept on purpose",
    "run_secrets": "a run's encrypted LLM key while it runs: deleted with its run (ON DELETE CASCADE)",
    "cron_secrets": "a cron's encrypted LLM key: deleted with its cron (ON DELETE CASCADE), which the purge deletes",
}

FENCE_SQLSTATE = "P0C01"  # raised by cogni_purge_refuse() (migration 0004)
LOCK_CLASS = 0x70726700  # "prg": pg_try_advisory_lock(LOCK_CLASS, hashtext(tenant)) = the purge's owner
# "prgw": the fenced writes hold it shared on their tenant or store label (migration 0005); a purge's
# start holds it exclusively, so it waits for the writes in flight and the writes after it see the job
WRITES_LOCK_CLASS = 0x70726777
OWNER_POLL_SECONDS = 0.1  # how often a caller looks whether another process's pass has ended
BATCH = 500  # threads (with their runs and checkpoints) per transaction

# -- the job -----------------------------------------------------------------------------------
START_JOB = (
    "INSERT INTO tenant_purges (tenant, store_label, status) VALUES (%s, %s, 'in_progress')"
    " ON CONFLICT (tenant) DO UPDATE SET status = 'in_progress', updated_at = now(), finished_at = NULL"
    " RETURNING tenant, status, counts, passes"
)
SELECT_JOB = "SELECT tenant, status, counts, passes, requested_at, finished_at FROM tenant_purges WHERE tenant = %s"
SAVE_COUNTS = "UPDATE tenant_purges SET counts = %s, updated_at = now() WHERE tenant = %s"
FINISH_JOB = (
    "UPDATE tenant_purges SET status = 'done', counts = %s, passes = passes + 1, updated_at = now(),"
    " finished_at = now() WHERE tenant = %s"
)
END_PASS = "UPDATE tenant_purges SET counts = %s, passes = passes + 1, updated_at = now() WHERE tenant = %s"
UNFINISHED = "SELECT tenant FROM tenant_purges WHERE status = 'in_progress' ORDER BY updated_at LIMIT %s"
LOCK_WRITES = (
    "SELECT pg_advisory_xact_lock(%(class)s, hashtext(%(tenant)s)),"
    " pg_advisory_xact_lock(%(class)s, hashtext(%(label)s))"
)
# a checkpoint write outside a run (a state update) holds the writes lock shared for its duration, as a
# fenced insert does, and is refused when a purge has started (the checkpoint tables carry no fence)
GUARD_CHECKPOINT_WRITE = (
    "SELECT pg_advisory_xact_lock_shared(%(class)s, hashtext(%(tenant)s)),"
    " (SELECT cogni_purge_refuse(tenant) FROM tenant_purges WHERE tenant = %(tenant)s AND status = 'in_progress')"
)
TRY_LOCK = "SELECT pg_try_advisory_lock(%s, hashtext(%s)) AS locked"
UNLOCK = "SELECT pg_advisory_unlock(%s, hashtext(%s))"

# -- what is in flight ---------------------------------------------------------------------------
INFLIGHT_RUNS = "SELECT run_id, thread_id, status FROM runs WHERE owner = %s AND status IN ('pending', 'running')"

# -- the deletes (each returns what it deleted, so the counts are exact) -------------------------------
DELETE_CRONS = "DELETE FROM crons WHERE owner = %s"
# Threads with no running run (a run still executing keeps its thread until it stopped), locked so
# that a run being created on one waits and then finds it gone. No SKIP LOCKED: a thread another
# transaction holds for a moment must not be left behind by a pass that then says it is done.
LOCK_IDLE_THREADS = (
    "SELECT t.thread_id FROM threads t WHERE t.owner = %s AND NOT EXISTS (SELECT 1 FROM runs r"
    " WHERE r.thread_id = t.thread_id AND r.status = 'running') ORDER BY t.thread_id LIMIT %s"
    " FOR UPDATE OF t"
)
COUNT_THREADS = "SELECT count(*) AS n FROM threads WHERE owner = %s"
RUN_IDS_OF_THREADS = "SELECT run_id FROM runs WHERE thread_id = ANY(%s::uuid[])"
DELETE_RUNS_OF_THREADS = "DELETE FROM runs WHERE thread_id = ANY(%s::uuid[])"
DELETE_THREADS = "DELETE FROM threads WHERE thread_id = ANY(%s::uuid[])"
DELETE_CHECKPOINT_WRITES = "DELETE FROM checkpoint_writes WHERE thread_id = ANY(%s::text[])"
DELETE_CHECKPOINT_BLOBS = "DELETE FROM checkpoint_blobs WHERE thread_id = ANY(%s::text[])"
DELETE_CHECKPOINTS = "DELETE FROM checkpoints WHERE thread_id = ANY(%s::text[])"
# runs whose thread stays (it has a running run): the finished and pending ones go now
DELETE_IDLE_RUNS = "DELETE FROM runs WHERE owner = %s AND status <> 'running' RETURNING run_id"
DELETE_ASSISTANT_VERSIONS = (
    "DELETE FROM assistant_versions WHERE assistant_id IN (SELECT assistant_id FROM assistants WHERE owner = %s)"
)
DELETE_ASSISTANTS = "DELETE FROM assistants WHERE owner = %s"
COUNT_STORE_VECTORS = "SELECT count(*) AS n FROM store_vectors WHERE prefix = %(label)s OR prefix LIKE %(pattern)s"
DELETE_STORE = "DELETE FROM store WHERE prefix = %(label)s OR prefix LIKE %(pattern)s"
DELETE_WEBHOOK_OUTBOX = "DELETE FROM webhook_outbox WHERE owner = %s"
TABLE_EXISTS = "SELECT to_regclass(%s) IS NOT NULL AS present"

# -- the fence on the libraries' tables (their creators run after our migrations) --------------------
FENCED_LIBRARY_TABLES = {
    "checkpoints": "cogni_purge_fence_checkpoint",
    "checkpoint_blobs": "cogni_purge_fence_checkpoint",
    "checkpoint_writes": "cogni_purge_fence_checkpoint",
    "store": "cogni_purge_fence_store",
}
INSTALL_FENCE = (
    "CREATE OR REPLACE TRIGGER {table}_purge_fence BEFORE INSERT OR UPDATE ON {table}"
    " FOR EACH ROW EXECUTE FUNCTION {function}()"
)
FENCE_INSTALLED = "SELECT 1 FROM pg_trigger WHERE tgname = %s AND tgrelid = to_regclass(%s)"
FENCE_LOCK_KEY = 0x70726766  # "prgf": one installer at a time (polled, see storage/migrations.py)


@asynccontextmanager
async def checkpoint_write_guard(pool: AsyncConnectionPool[Any], tenant: str) -> AsyncIterator[None]:
    """Around a checkpoint write that is not part of a run (the checkpointer commits it on its own
    connection): a purge that starts meanwhile waits until the block is over and then sees the write;
    a block entered after a purge started is refused with the fence's error (answered 409)."""
    async with pool.connection() as conn, conn.transaction():
        await conn.execute(GUARD_CHECKPOINT_WRITE, {"class": WRITES_LOCK_CLASS, "tenant": tenant})
        yield


def is_fence_error(exc: BaseException) -> bool:
    """True when the database refused a write because the tenant is being purged."""
    return getattr(exc, "sqlstate", None) == FENCE_SQLSTATE


def store_pattern(label: str) -> dict[str, str]:
    """The store rows under ``label``: the label itself or ``label.`` + anything (no ``_``/``%`` in it)."""
    return {"label": label, "pattern": label + ".%"}


async def install_fences(pool: AsyncConnectionPool[Any]) -> list[str]:
    """Put the fence triggers on the checkpointer's and the store's tables that exist; returns the
    tables fenced now. Polls a lock, never waits inside one (see ``storage/migrations.py``)."""
    installed: list[str] = []
    async with pool.connection() as conn:
        for _ in itertools.count():  # until the lock is ours
            if await _try_lock(conn, FENCE_LOCK_KEY):
                break
            await asyncio.sleep(0.1)
        try:
            for table, function in FENCED_LIBRARY_TABLES.items():
                if not await table_exists(conn, table):
                    continue
                cur = await conn.execute(FENCE_INSTALLED, (f"{table}_purge_fence", table))
                if await cur.fetchone() is not None:
                    continue
                await conn.execute(INSTALL_FENCE.format(table=table, function=function).encode())
                installed.append(table)
        finally:
            await conn.execute("SELECT pg_advisory_unlock(%s)", (FENCE_LOCK_KEY,))
    return installed


async def _try_lock(conn: Conn, key: int) -> bool:
    cur = await conn.execute("SELECT pg_try_advisory_lock(%s) AS locked", (key,))
    row = await cur.fetchone()
    return bool(row and row["locked"])


async def table_exists(conn: Conn, table: str) -> bool:
    cur = await conn.execute(TABLE_EXISTS, (table,))
    row = await cur.fetchone()
    return bool(row and row["present"])


# -- the job -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Ownership:
    mine: bool  # this process may work on the tenant's purge now
    waited: bool  # another process held it at first: this call waited for that process's pass


@asynccontextmanager
async def owned(
    pool: AsyncConnectionPool[Any],
    tenant: str,
    *,
    wait_seconds: float = 0.0,
    on_busy: Callable[[], None] | None = None,
) -> AsyncIterator[Ownership]:
    """Whether this process may work on the tenant's purge now: a session lock on a connection held
    for the whole pass. A crash (even ``kill -9``) closes the connection, so the lock never outlives
    its owner and the next call or the sweeper takes over at once.

    Held by another process: ``on_busy`` is called once, the lock is polled for up to ``wait_seconds``
    (no connection is held between tries, no statement waits), then ``mine`` is False."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait_seconds
    waited = False
    while True:
        async with pool.connection() as conn:
            cur = await conn.execute(TRY_LOCK, (LOCK_CLASS, tenant))
            row = await cur.fetchone()
            if row and row["locked"]:
                try:
                    yield Ownership(mine=True, waited=waited)
                finally:
                    await conn.execute(UNLOCK, (LOCK_CLASS, tenant))
                return
        if loop.time() >= deadline:
            break
        if not waited and on_busy is not None:
            on_busy()
        waited = True
        await asyncio.sleep(OWNER_POLL_SECONDS)
    yield Ownership(mine=False, waited=waited)


async def start_job(conn: Conn, tenant: str, store_label: str) -> dict[str, Any]:
    """Record the purge as in progress (the fence is up from the commit on); returns the job.

    First the tenant's writes in flight are waited for (they hold the writes lock shared until they
    commit, migration 0005): the pass that follows sees every row they wrote, and every write after
    the commit is refused."""
    async with conn.transaction():
        await conn.execute(LOCK_WRITES, {"class": WRITES_LOCK_CLASS, "tenant": tenant, "label": store_label})
        cur = await conn.execute(START_JOB, (tenant, store_label))
        row = await cur.fetchone()
    assert row is not None
    return dict(row)


async def get_job(conn: Conn, tenant: str) -> dict[str, Any] | None:
    cur = await conn.execute(SELECT_JOB, (tenant,))
    row = await cur.fetchone()
    return None if row is None else dict(row)


async def save_counts(conn: Conn, tenant: str, counts: dict[str, int]) -> None:
    await conn.execute(SAVE_COUNTS, (Jsonb(counts), tenant))


async def end_pass(conn: Conn, tenant: str, counts: dict[str, int], *, done: bool) -> None:
    """Close a pass: ``done`` lowers the fence; otherwise the job stays in progress."""
    await conn.execute(FINISH_JOB if done else END_PASS, (Jsonb(counts), tenant))


async def unfinished(conn: Conn, limit: int = 100) -> list[str]:
    """Tenants whose purge is still in progress (the sweeper's work list)."""
    cur = await conn.execute(UNFINISHED, (limit,))
    return [str(r["tenant"]) for r in await cur.fetchall()]


async def thread_count(conn: Conn, tenant: str) -> int:
    cur = await conn.execute(COUNT_THREADS, (tenant,))
    row = await cur.fetchone()
    return int(row["n"]) if row else 0


async def inflight_runs(conn: Conn, tenant: str) -> list[dict[str, Any]]:
    cur = await conn.execute(INFLIGHT_RUNS, (tenant,))
    return [dict(r) for r in await cur.fetchall()]


# -- the deletes -------------------------------------------------------------------------------
async def _delete(conn: Conn, statement: str, params: Any) -> int:
    cur = await conn.execute(statement, params)
    return max(cur.rowcount, 0)


async def delete_crons(conn: Conn, tenant: str) -> int:
    return await _delete(conn, DELETE_CRONS, (tenant,))


async def idle_thread_batch(conn: Conn, tenant: str) -> tuple[list[uuid.UUID], list[str]]:
    """Lock up to ``BATCH`` of the tenant's threads with nothing running (inside the caller's
    transaction); returns them and their runs' ids (whose broker keys go too)."""
    cur = await conn.execute(LOCK_IDLE_THREADS, (tenant, BATCH))
    threads = [r["thread_id"] for r in await cur.fetchall()]
    if not threads:
        return [], []
    cur = await conn.execute(RUN_IDS_OF_THREADS, (threads,))
    return threads, [str(r["run_id"]) for r in await cur.fetchall()]


async def delete_threads(conn: Conn, threads: list[uuid.UUID]) -> dict[str, int]:
    """Delete locked threads with their runs and checkpoints (inside the caller's transaction). The
    thread rows go first: a checkpoint write racing with this either committed before (and is
    deleted below) or is refused by the fence."""
    text_ids = [str(t) for t in threads]
    counts = {"runs": await _delete(conn, DELETE_RUNS_OF_THREADS, (threads,))}
    counts["threads"] = await _delete(conn, DELETE_THREADS, (threads,))
    counts["checkpoint_writes"] = await _delete(conn, DELETE_CHECKPOINT_WRITES, (text_ids,))
    counts["checkpoint_blobs"] = await _delete(conn, DELETE_CHECKPOINT_BLOBS, (text_ids,))
    counts["checkpoints"] = await _delete(conn, DELETE_CHECKPOINTS, (text_ids,))
    return counts


async def delete_idle_runs(conn: Conn, tenant: str) -> list[str]:
    """Runs left on threads that stay for now (their thread has a running run): all but that one."""
    cur = await conn.execute(DELETE_IDLE_RUNS, (tenant,))
    return [str(r["run_id"]) for r in await cur.fetchall()]


async def delete_assistants(conn: Conn, tenant: str) -> dict[str, int]:
    async with conn.transaction():
        versions = await _delete(conn, DELETE_ASSISTANT_VERSIONS, (tenant,))
        assistants = await _delete(conn, DELETE_ASSISTANTS, (tenant,))
    return {"assistant_versions": versions, "assistants": assistants}


async def delete_store(conn: Conn, store_label: str) -> dict[str, int]:
    params = store_pattern(store_label)
    counts: dict[str, int] = {}
    async with conn.transaction():
        if await table_exists(conn, "store_vectors"):
            cur = await conn.execute(COUNT_STORE_VECTORS, params)
            row = await cur.fetchone()
            counts["store_vectors"] = int(row["n"]) if row else 0  # they cascade with their items
        counts["store"] = await _delete(conn, DELETE_STORE, params)
    return counts


async def delete_webhook_outbox(conn: Conn, tenant: str) -> int:
    return await _delete(conn, DELETE_WEBHOOK_OUTBOX, (tenant,))
