"""Thread TTL: the ``ttl`` of ``POST /threads`` and ``PATCH /threads/{id}`` (the SDKs send
``{"ttl": <minutes>, "strategy": "delete" | "keep_latest"}``), the default from langgraph.json's
``checkpointer.ttl``, and the sweeper that applies the strategy once the deadline has passed.

The deadline is ``now + ttl`` when the TTL is set and again whenever a run is created on the thread.
``delete`` removes the thread with its runs and checkpoints through ``services.deletion``;
``keep_latest`` keeps the thread and its latest checkpoint. A thread with a pending or running run
is never swept; it is looked at again on the next sweep.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import Any

from cogni_server import metrics
from cogni_server.errors import Conflict, NotFound
from cogni_server.services.context import ServerContext
from cogni_server.services.deletion import delete_thread
from cogni_server.storage import checkpoints as checkpoint_repo
from cogni_server.storage import thread_ttl as ttl_repo

log = logging.getLogger("cogni_server.ttl")


async def get_ttl(ctx: ServerContext, tenant: str, thread_id: uuid.UUID) -> dict[str, Any] | None:
    async with ctx.pool.connection() as conn:
        return await ttl_repo.get_ttl(conn, tenant, thread_id)


class TTLSweeper:
    """Every sweep interval, in every worker process (safe concurrently): apply expired TTLs."""

    def __init__(self, ctx: ServerContext) -> None:
        self.ctx = ctx

    async def run_forever(self) -> None:
        while True:
            try:
                await self.sweep()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("thread TTL sweep failed; retrying next interval")
            await asyncio.sleep(self.ctx.thread_ttl.sweep_interval_seconds)

    async def sweep(self) -> int:
        """Apply the strategy of every expired idle thread (up to ``sweep_limit``); returns how many."""
        async with self.ctx.pool.connection() as conn:
            rows = await ttl_repo.expired(conn, self.ctx.thread_ttl.sweep_limit)
        done = 0
        for row in rows:
            try:
                if row["strategy"] == "keep_latest":
                    await self._keep_latest(row["owner"], row["thread_id"])
                else:
                    await delete_thread(self.ctx, row["owner"], row["thread_id"], only_if_idle=True)
            except (Conflict, NotFound):
                continue  # a run started on it, or another process swept it first
            done += 1
            metrics.THREADS_EXPIRED.labels(row["strategy"]).inc()
            log.info("thread %s expired (%s)", row["thread_id"], row["strategy"])
        return done

    async def _keep_latest(self, owner: str, thread_id: uuid.UUID) -> None:
        async with self.ctx.pool.connection() as conn, conn.transaction():
            if not await ttl_repo.lock_if_idle(conn, owner, thread_id):
                raise Conflict(f"thread {thread_id} is busy or gone")
            await checkpoint_repo.keep_latest(conn, thread_id)
            await ttl_repo.clear_expiry(conn, thread_id)
