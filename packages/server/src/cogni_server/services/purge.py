"""Tenant purge: delete every row and broker key of one tenant, safely while its runs are live, and
finish after a crash (docs/compliance.md, "The Agent Server").

A purge is a job row (``tenant_purges``). While it is ``in_progress`` the database refuses every
new row of the tenant (the fence of migration 0004): a run still executing on any worker, a cron
firing or the tenant's own API calls cannot write anything back. One pass:

1. the tenant's crons go (nothing new gets scheduled); its in-flight runs are cancelled through the
   ordinary cancel path (pending ones at once, running ones by a control message to their worker);
2. every thread with nothing running goes, in batches, with its runs, checkpoints and broker keys
   (run streams, controls, thread streams, the thread event log); then assistants and store items;
3. the pass waits (``COGNI_PURGE_STOP_SECONDS``) for running runs to stop, deletes what they left,
   then the webhook outbox; with nothing in flight any more the job is ``done`` and the fence drops,
   otherwise it stays ``in_progress`` and the next call or the sweeper carries on.

Only one process works on a tenant's purge at a time (a session lock that dies with its owner, see
``storage.purge.owned``); every step is idempotent, so a pass interrupted anywhere is simply
repeated. Counts add up over all passes. A caller that finds another process at work waits for its
pass and answers with the record it leaves (``purge_tenant``): concurrent callers get one answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from cogni_server.errors import Invalid
from cogni_server.services.context import ServerContext
from cogni_server.services.runs import cancel_runs
from cogni_server.storage import purge as purge_repo
from cogni_server.storage.store import tenant_label

log = logging.getLogger("cogni_server.purge")

POLL_SECONDS = 0.25  # how often a pass looks whether the cancelled runs have stopped
OWNER_WAIT_MARGIN_SECONDS = 10.0  # a caller waits for another process's pass: its stop window and this
MAX_TENANT_LENGTH = 1024


@dataclass
class PurgeResult:
    tenant: str
    status: str  # done | in_progress
    counts: dict[str, int] = field(default_factory=dict)

    def to_json(self) -> dict[str, object]:
        return {"tenant": self.tenant, "status": self.status, "counts": self.counts}


def _check_tenant(tenant: str) -> None:
    if not tenant or not tenant.strip():
        raise Invalid("tenant must not be empty")
    if len(tenant) > MAX_TENANT_LENGTH:
        raise Invalid(f"tenant is longer than {MAX_TENANT_LENGTH} characters")


def _all_tables(counts: Counter[str]) -> dict[str, int]:
    """Every table the purge knows, zero when nothing of the tenant was in it."""
    return {table: int(counts.get(table, 0)) for table in purge_repo.TENANT_TABLES}


async def purge_tenant(
    ctx: ServerContext, tenant: str, *, stop_seconds: float | None = None, resume_only: bool = False
) -> PurgeResult:
    """Run one pass of the tenant's purge (starting the job if needed) and say where it stands.

    Another process working on it right now: this call waits for its pass (up to the stop window and
    ``OWNER_WAIT_MARGIN_SECONDS``). If the purge is done then, that is the answer: the same record and
    counts as the other caller's, and no second pass. If it is still in progress, this call carries
    on with a pass of its own. Still busy when the wait ends: ``in_progress`` with the counts so far.

    ``resume_only`` (the sweeper): never waits, and only carries on a purge still in progress once it
    holds the lock (its list of unfinished purges may be stale: a purge done meanwhile is not run
    again, so a tenant that started afresh keeps its new data).
    """
    _check_tenant(tenant)
    wait = ctx.settings.purge_stop_seconds if stop_seconds is None else stop_seconds
    patience = 0.0 if resume_only else wait + OWNER_WAIT_MARGIN_SECONDS

    def busy() -> None:
        log.info(
            "purge of tenant %r: another process is working on it; waiting up to %gs for its pass", tenant, patience
        )

    async with purge_repo.owned(ctx.pool, tenant, wait_seconds=patience, on_busy=busy) as ownership:
        async with ctx.pool.connection() as conn:
            job = await purge_repo.get_job(conn, tenant)
        if not ownership.mine:
            return PurgeResult(tenant, "in_progress", _all_tables(_counts_of(job)))
        if job is not None and job["status"] == "done" and (ownership.waited or resume_only):
            log.info("purge of tenant %r: done by another process meanwhile", tenant)
            return PurgeResult(tenant, "done", _all_tables(_counts_of(job)))
        if job is None and resume_only:
            return PurgeResult(tenant, "in_progress", _all_tables(Counter()))
        async with ctx.pool.connection() as conn:
            job = await purge_repo.start_job(conn, tenant, tenant_label(tenant))
        counts = _counts_of(job)
        done = await _pass(ctx, tenant, counts, wait)
        async with ctx.pool.connection() as conn:
            await purge_repo.end_pass(conn, tenant, dict(counts), done=done)
    log.info("purge of tenant %r: %s %s", tenant, "done" if done else "in progress", dict(counts))
    return PurgeResult(tenant, "done" if done else "in_progress", _all_tables(counts))


def _counts_of(job: dict[str, Any] | None) -> Counter[str]:
    raw = (job or {}).get("counts") or {}
    return Counter({str(k): int(v) for k, v in raw.items()})


async def purge_status(ctx: ServerContext, tenant: str) -> PurgeResult | None:
    """The tenant's purge record, without doing anything (None: never purged)."""
    _check_tenant(tenant)
    async with ctx.pool.connection() as conn:
        job = await purge_repo.get_job(conn, tenant)
    if job is None:
        return None
    return PurgeResult(tenant, str(job["status"]), _all_tables(_counts_of(job)))


async def _pass(ctx: ServerContext, tenant: str, counts: Counter[str], wait: float) -> bool:
    """One pass over everything; True when nothing of the tenant is in flight and no thread is left."""
    label = tenant_label(tenant)
    async with ctx.pool.connection() as conn:
        counts["crons"] += await purge_repo.delete_crons(conn, tenant)
    controlled: set[str] = set()
    await _cancel_inflight(ctx, tenant, controlled)
    await _delete_idle_threads(ctx, tenant, counts)
    async with ctx.pool.connection() as conn:
        counts.update(await purge_repo.delete_assistants(conn, tenant))
        counts.update(await purge_repo.delete_store(conn, label))
        await purge_repo.save_counts(conn, tenant, dict(counts))
    stopped = await _wait_for_runs(ctx, tenant, controlled, wait)
    await _delete_idle_threads(ctx, tenant, counts)
    async with ctx.pool.connection() as conn:
        leftover_runs = await purge_repo.delete_idle_runs(conn, tenant)
        counts["runs"] += len(leftover_runs)
        counts.update(await purge_repo.delete_store(conn, label))  # a write that committed as the fence rose
        counts["webhook_outbox"] += await purge_repo.delete_webhook_outbox(conn, tenant)
        threads_left = await purge_repo.thread_count(conn, tenant)
    if leftover_runs:
        await ctx.broker.forget(run_ids=leftover_runs, thread_ids=[])
    return stopped and threads_left == 0


async def _cancel_inflight(ctx: ServerContext, tenant: str, controlled: set[str]) -> int:
    """Cancel what is in flight: pending runs every time (a lapsed lease puts a run back in the
    queue), a control message once per running run. Returns how many runs are still running."""
    async with ctx.pool.connection() as conn:
        rows = await purge_repo.inflight_runs(conn, tenant)
    pending = [str(r["run_id"]) for r in rows if r["status"] == "pending"]
    running = [str(r["run_id"]) for r in rows if r["status"] == "running"]
    fresh = [run_id for run_id in running if run_id not in controlled]
    if pending or fresh:
        await cancel_runs(ctx, pending + fresh, "interrupt")
        controlled.update(fresh)
    return len(running)


async def _wait_for_runs(ctx: ServerContext, tenant: str, controlled: set[str], wait: float) -> bool:
    """Wait up to ``wait`` seconds until none of the tenant's runs is pending or running."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait
    while True:
        running = await _cancel_inflight(ctx, tenant, controlled)
        async with ctx.pool.connection() as conn:
            left = await purge_repo.inflight_runs(conn, tenant)
        if not left:
            return True
        if loop.time() >= deadline:
            log.warning("purge of tenant %r: %d run(s) still running after %gs; going on later", tenant, running, wait)
            return False
        await asyncio.sleep(POLL_SECONDS)


async def _delete_idle_threads(ctx: ServerContext, tenant: str, counts: Counter[str]) -> None:
    """Threads with nothing running, batch by batch: their broker keys and event logs are deleted
    while the rows are locked, then the rows (with runs and checkpoints) in the same transaction."""
    while True:
        async with ctx.pool.connection() as conn, conn.transaction():
            threads, run_ids = await purge_repo.idle_thread_batch(conn, tenant)
            if not threads:
                return
            await _forget_streams(ctx, [str(t) for t in threads], run_ids)
            counts.update(await purge_repo.delete_threads(conn, threads))


async def _forget_streams(ctx: ServerContext, thread_ids: list[str], run_ids: list[str]) -> None:
    """Broker streams and controls of the runs, thread streams and the thread event log."""
    with contextlib.suppress(Exception):
        await ctx.thread_log.flush()  # a buffered event would bring a deleted log back
    for thread_id in thread_ids:
        await ctx.thread_log.forget(thread_id)
    await ctx.broker.forget(run_ids=run_ids, thread_ids=thread_ids)


class PurgeSweeper:
    """Finishes purges left in progress: by a crash, or by runs that took longer to stop than a pass
    waited. Safe in any number of processes (one works on a tenant at a time)."""

    def __init__(self, ctx: ServerContext) -> None:
        self.ctx = ctx

    async def sweep(self) -> int:
        """One round over the unfinished purges; returns how many are done now."""
        async with self.ctx.pool.connection() as conn:
            tenants = await purge_repo.unfinished(conn)
        done = 0
        for tenant in tenants:
            result = await purge_tenant(self.ctx, tenant, resume_only=True)
            done += result.status == "done"
        return done

    async def run_forever(self) -> None:
        while True:
            try:
                await self.sweep()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("purge sweep failed; retrying")
            await asyncio.sleep(self.ctx.settings.sweep_seconds)
