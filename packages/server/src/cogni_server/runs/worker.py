"""The worker pool of one process: bounded concurrency, claims from Postgres, leases, sweeper, drain.

Runs created through this process's API start immediately in a free slot (inserted already claimed,
no queue hop); everything else is claimed with ``FOR UPDATE SKIP LOCKED`` when the broker signals a
pending run, with a slow poll as the fallback. A heartbeat renews the leases of the runs executing
here (and only those: a row whose executor is gone is left to lapse), and the sweeper (in every
process, safe to run concurrently) re-queues runs whose worker died. A run the heartbeat could not
renew because another worker holds it now is stopped without being finished (``Executor.abandon``).

On SIGTERM the pool stops claiming at once; running runs get ``COGNI_DRAIN_SECONDS`` from the
signal to finish, the rest are cancelled and, once their graphs have really stopped, handed back to
the queue. The heartbeat runs until then, so no other instance can take a run still executing here.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from psycopg_pool import AsyncConnectionPool

from cogni_server import metrics
from cogni_server.config import Settings
from cogni_server.runs.executor import Executor
from cogni_server.serde import dumps
from cogni_server.storage import queue as queue_repo
from cogni_server.storage.pool import with_retries
from cogni_server.streaming import StreamBroker

log = logging.getLogger("cogni_server.worker")

STOP_WAIT_SECONDS = 10.0  # how long the drain waits for a cancelled run's graph to stop


class RunSlot:
    """A reserved place in this process's worker pool (see ``WorkerPool.reserve``)."""

    def __init__(self, pool: WorkerPool, worker_id: str | None) -> None:
        self._pool = pool
        self.worker_id = worker_id
        self.started = False

    def start(self, run: dict[str, Any]) -> None:
        """Execute a run that was inserted already claimed by this slot's worker id."""
        if self.worker_id is None or self.started:
            raise RuntimeError("this slot holds no reservation to start a run with")
        self.started = True
        self._pool._start_reserved(run)


class WorkerPool:
    def __init__(
        self,
        *,
        pool: AsyncConnectionPool[Any],
        executor: Executor,
        broker: StreamBroker,
        settings: Settings,
        enabled: bool,
    ) -> None:
        self.pool = pool
        self.executor = executor
        self.broker = broker
        self.settings = settings
        self.enabled = enabled
        self.capacity = settings.n_jobs_per_worker
        self.worker_id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._active: dict[str, asyncio.Task[None]] = {}
        self._reserved = 0
        self._stopping = False
        self._stop_requested: float | None = None  # time.monotonic() of the SIGTERM
        self._loops: list[asyncio.Task[None]] = []
        self._heartbeat: asyncio.Task[None] | None = None

    # -- slots for runs started by this process's API -------------------------------------------
    @asynccontextmanager
    async def reserve(self) -> AsyncIterator[RunSlot]:
        """A local slot for a run about to be inserted: insert it already claimed by
        ``slot.worker_id`` (None when no slot is free) and ``slot.start(run)`` it; an unused
        reservation is released on exit, whatever happened."""
        worker_id: str | None = None
        if self.enabled and not self._stopping and len(self._active) + self._reserved < self.capacity:
            self._reserved += 1
            worker_id = self.worker_id
        slot = RunSlot(self, worker_id)
        try:
            yield slot
        finally:
            if worker_id is not None and not slot.started:
                self._reserved = max(0, self._reserved - 1)

    def _start_reserved(self, run: dict[str, Any]) -> None:
        self._reserved = max(0, self._reserved - 1)
        self._spawn(run)

    def _spawn(self, run: dict[str, Any]) -> None:
        run_id = str(run["run_id"])
        task = asyncio.create_task(self._execute(run), name=f"run-{run_id}")
        self._active[run_id] = task
        metrics.RUNS_ACTIVE.set(len(self._active))

    async def _execute(self, run: dict[str, Any]) -> None:
        run_id = str(run["run_id"])
        try:
            await self.executor.execute(run, self.worker_id)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("run %s crashed in the executor", run_id)
        finally:
            was_full = len(self._active) + self._reserved >= self.capacity
            self._active.pop(run_id, None)
            metrics.RUNS_ACTIVE.set(len(self._active))
            if was_full and not self._stopping:  # runs may be waiting for this slot: claim now
                with contextlib.suppress(Exception):
                    await self.broker.notify_run_pending()

    # -- background loops ----------------------------------------------------------------------
    def start(self) -> None:
        if not self.enabled:
            return
        self._loops = [
            asyncio.create_task(self._claim_loop(), name="claim-loop"),
            asyncio.create_task(self._sweep_loop(), name="sweep-loop"),
        ]
        self._heartbeat = asyncio.create_task(self._heartbeat_loop(), name="heartbeat-loop")

    async def _claim_loop(self) -> None:
        while not self._stopping:
            try:
                free = self.capacity - len(self._active) - self._reserved
                if free > 0:
                    async with self.pool.connection() as conn:
                        rows = await queue_repo.claim(conn, self.worker_id, free, self.settings.lease_seconds)
                    for row in rows:
                        self._spawn(row)
                    if rows and len(rows) == free:
                        continue
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("claiming runs failed; retrying")
            with contextlib.suppress(Exception):
                await self.broker.wait_run_pending(self.settings.poll_seconds)

    async def _heartbeat_loop(self) -> None:
        """Renew leases until the drain has stopped the last run (it cancels this loop itself)."""
        while True:
            await asyncio.sleep(self.settings.heartbeat_seconds)
            await self.renew_leases()

    async def renew_leases(self) -> None:
        """Renew the leases of the runs executing here; stop those another worker holds now."""
        running = list(self._active)
        if not running:
            return
        try:
            async with self.pool.connection() as conn:
                renewed = await queue_repo.heartbeat(conn, self.worker_id, running, self.settings.lease_seconds)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("lease heartbeat failed")
            return
        for run_id in running:
            if run_id not in renewed and self.executor.abandon(run_id):
                log.warning("run %s: its lease is no longer ours (another worker took it); stopping it", run_id)

    async def _sweep_loop(self) -> None:
        while not self._stopping:
            try:
                async with self.pool.connection() as conn:
                    swept = await queue_repo.sweep(conn, self.settings.max_attempts)
                if swept:
                    metrics.RUNS_REQUEUED.inc(len(swept))
                    log.warning("re-queued %d run(s) whose lease lapsed: %s", len(swept), swept)
                    for row in swept:
                        if row["status"] == "error":
                            run_id = str(row["run_id"])
                            message = f"the run's worker was lost {row['attempt']} time(s); giving up"
                            await self.broker.publish(
                                run_id,
                                "error",
                                dumps({"error": "WorkerLost", "message": message}),
                                thread_id=str(row["thread_id"]),
                            )
                            await self.broker.end(run_id)
                            if self.executor.lifecycle is not None:  # thread stream: its one terminal
                                await self.executor.lifecycle.ended_without_running(
                                    str(row["thread_id"]), run_id, error=message, code="worker_lost", deferred=False
                                )
                    await self.broker.notify_run_pending()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("sweeping lapsed leases failed")
            await asyncio.sleep(self.settings.sweep_seconds)

    # -- shutdown --------------------------------------------------------------------------------
    @property
    def drained(self) -> bool:
        """Shutting down and no run executes here any more: thread streams may close (clients reconnect)."""
        return self._stopping and not self._active

    def stop_claiming(self) -> None:
        """First step of a drain (on SIGTERM): take no new runs; running ones carry on, and the
        drain's grace period counts from now."""
        if not self._stopping:
            self._stopping = True
            self._stop_requested = time.monotonic()

    async def drain(self, grace: float) -> None:
        """Let running runs finish until ``grace`` seconds after ``stop_claiming``, cancel the rest,
        wait for their graphs to stop and re-queue them; leases are renewed until then."""
        self.stop_claiming()
        try:
            for loop in self._loops:
                loop.cancel()
            for loop in self._loops:
                with contextlib.suppress(BaseException):
                    await loop
            assert self._stop_requested is not None
            remaining = max(0.0, self._stop_requested + grace - time.monotonic())
            if self._active:
                await asyncio.wait(list(self._active.values()), timeout=remaining)
            leftover = list(self._active.items())
            for _, task in leftover:
                task.cancel()
            if leftover:
                await asyncio.wait([task for _, task in leftover], timeout=STOP_WAIT_SECONDS)
            stopped = [run_id for run_id, task in leftover if task.done()]
            stuck = [run_id for run_id, task in leftover if not task.done()]
            if stuck:
                log.error(
                    "drain: run(s) %s did not stop within %gs of being cancelled; their leases lapse and"
                    " another instance's sweeper re-queues them",
                    stuck,
                    STOP_WAIT_SECONDS,
                )
            if stopped:
                await self._requeue(stopped)
        finally:
            if self._heartbeat is not None:
                self._heartbeat.cancel()
                with contextlib.suppress(BaseException):
                    await self._heartbeat

    async def _requeue(self, run_ids: list[str]) -> None:
        try:

            async def requeue(conn: Any) -> int:
                return await queue_repo.requeue(conn, run_ids, self.worker_id)

            n = await with_retries(self.pool, requeue, what="drain: re-queueing", limit=STOP_WAIT_SECONDS)
            metrics.RUNS_REQUEUED.inc(n)
            log.warning("drain: re-queued %d unfinished run(s)", n)
            await self.broker.notify_run_pending()
        except Exception:
            log.exception("drain: re-queueing failed; the sweeper will recover the runs")
