"""One rule for deleting threads, wherever the delete comes from (thread delete, assistant delete
with its threads, prune; later TTL sweeps and tenant purges): cancel the thread's live runs, delete
the row (runs go with it), then its checkpoints. No pooled connection is held while another is
taken, so a delete of many threads cannot starve the pool.
"""

from __future__ import annotations

import contextlib
import uuid

from cogni_server.errors import Conflict, NotFound
from cogni_server.services.assistants import assistant_uuid
from cogni_server.services.context import ServerContext
from cogni_server.services.runs import cancel_thread_runs
from cogni_server.storage import assistants as assistant_repo
from cogni_server.storage import checkpoints as checkpoint_repo
from cogni_server.storage import thread_ttl as ttl_repo
from cogni_server.storage import threads as thread_repo


async def delete_thread(ctx: ServerContext, tenant: str, thread_id: uuid.UUID, *, only_if_idle: bool = False) -> None:
    """Delete one of the tenant's threads with its runs and checkpoints; NotFound if it is not theirs.

    ``only_if_idle`` (the TTL sweeper): never cancel anything; a thread with a pending or running
    run is left alone (Conflict), decided under the thread's row lock that run creation also takes.
    """
    if only_if_idle:
        async with ctx.pool.connection() as conn:
            if not await ttl_repo.delete_if_idle(conn, tenant, thread_id):
                raise Conflict(f"thread {thread_id} is busy or gone; not deleted")
            await checkpoint_repo.delete_thread(conn, thread_id)
        return
    async with ctx.pool.connection() as conn:
        if not await thread_repo.exists(conn, tenant, thread_id):
            raise NotFound(f"thread {thread_id} not found")
    await cancel_thread_runs(ctx, tenant, thread_id)
    async with ctx.pool.connection() as conn:
        await thread_repo.delete(conn, tenant, thread_id)
        await checkpoint_repo.delete_thread(conn, thread_id)
    await ctx.thread_log.forget(str(thread_id))  # its thread-stream events (a reused id starts afresh)


async def prune_threads(ctx: ServerContext, tenant: str, thread_ids: list[uuid.UUID], strategy: str) -> int:
    """``delete`` the threads, or ``keep_latest`` checkpoint only; returns how many were the tenant's."""
    pruned = 0
    for thread_id in thread_ids:
        if strategy == "delete":
            try:
                await delete_thread(ctx, tenant, thread_id)
            except NotFound:
                continue
        else:
            async with ctx.pool.connection() as conn:
                if not await thread_repo.exists(conn, tenant, thread_id):
                    continue
                await checkpoint_repo.keep_latest(conn, thread_id)
        pruned += 1
    return pruned


async def delete_assistant(ctx: ServerContext, tenant: str, assistant_id: str, *, delete_threads: bool) -> None:
    """Delete the assistant; with ``delete_threads``, every thread of the tenant that ran it."""
    aid = assistant_uuid(ctx, assistant_id)
    async with ctx.pool.connection() as conn:
        await assistant_repo.delete(conn, tenant, aid)
        thread_ids = await thread_repo.ids_for_assistant(conn, tenant, aid) if delete_threads else []
    for thread_id in thread_ids:
        with contextlib.suppress(NotFound):  # deleted meanwhile
            await delete_thread(ctx, tenant, thread_id)
