"""The end of a run attempt: its outcome recorded (fenced by the lease), its streams closed.

The database is updated before the broker stream ends, so a client that sees the stream close and
asks for the run already reads its final status. The end is written with retries on transient
errors; if it still cannot be written the row is left to the sweeper (the heartbeat no longer renews
it), which retries the run. A worker that lost its lease finishes nothing: row and stream belong to
the new owner. The workers are woken after an end only when it may have made a run claimable (a run
of the same thread waits); a freed slot wakes them from the worker pool.
"""

from __future__ import annotations

import contextlib
import logging
import time
from dataclasses import dataclass
from typing import Any

from psycopg_pool import AsyncConnectionPool

from cogni_server import metrics
from cogni_server.runs.lifecycle import RunLifecycle, RunTracker
from cogni_server.runs.settings import RunSettings, UnknownRunSettings
from cogni_server.serde import dumps
from cogni_server.storage import checkpoints as checkpoint_repo
from cogni_server.storage import queue as queue_repo
from cogni_server.storage import run_end
from cogni_server.storage import runs as run_repo
from cogni_server.storage import threads as thread_repo
from cogni_server.storage.pool import Conn, with_retries
from cogni_server.streaming import StreamBroker

log = logging.getLogger("cogni_server.runs")

END_RETRY_SECONDS = 60.0  # how long the end of a run is retried through a database outage


@dataclass
class Outcome:
    """How an attempt ended, as the executor saw it."""

    status: str  # success | error | interrupted | timeout | retry (back to the queue, next attempt)
    thread_status: str
    values: Any
    interrupts: dict[str, Any]
    error: dict[str, Any] | None
    rolled_back: bool = False
    cancelled: str | None = None  # the control action that stopped the run (thread-stream lifecycle)


class RunEnding:
    """Records outcomes and closes streams; one per process, shared by every run."""

    def __init__(self, *, pool: AsyncConnectionPool[Any], broker: StreamBroker, lifecycle: RunLifecycle | None) -> None:
        self.pool = pool
        self.broker = broker
        self.lifecycle = lifecycle

    async def end(
        self,
        run: dict[str, Any],
        settings: RunSettings,
        worker_id: str,
        outcome: Outcome,
        started: float,
        tracker: RunTracker | None,
    ) -> None:
        """Record the outcome (or give the run back for a retry), then close the streams if they are ours."""
        run_id = str(run["run_id"])
        owns_stream = False
        ended = False
        wake = True  # unless the end is known to leave nothing claimable on the run's thread
        try:
            if outcome.status == "retry":

                async def requeue(conn: Conn) -> int:
                    return await queue_repo.requeue(conn, [run_id], worker_id)

                n = await with_retries(self.pool, requeue, what=f"re-queueing run {run_id}", limit=END_RETRY_SECONDS)
                metrics.RUNS_REQUEUED.inc(n)
            else:

                async def record(conn: Conn) -> tuple[bool, bool, bool]:
                    return await self._record(conn, run, settings, worker_id, outcome)

                owns_stream, ended, wake = await with_retries(
                    self.pool, record, what=f"recording the end of run {run_id}", limit=END_RETRY_SECONDS
                )
                if ended and tracker is not None and self.lifecycle is not None:
                    # The thread stream's terminal, queued right after the commit (before another run of
                    # the thread can be claimed and begin), so each run's events stay contiguous.
                    try:
                        self.lifecycle.finish(
                            tracker,
                            status=outcome.status,
                            error=outcome.error,
                            cancelled=outcome.cancelled,
                            interrupts=outcome.interrupts,
                        )
                    except Exception:
                        ended = False
                        log.exception("run %s: could not write its thread-stream terminal", run_id)
        except Exception:
            log.exception("run %s: could not record its end; the sweeper retries it once its lease lapses", run_id)
        finally:
            if ended and self.lifecycle is not None:
                with contextlib.suppress(Exception):  # written before the v1 stream ends
                    await self.lifecycle.log.flush()
            if owns_stream:
                try:
                    await self.broker.end(run_id)
                except Exception:
                    log.warning("run %s: could not close its stream", run_id, exc_info=True)
            if wake:  # a run of the thread waits for this one (a free slot wakes the pool: worker.py)
                with contextlib.suppress(Exception):
                    await self.broker.notify_run_pending()
            if outcome.status != "retry":
                metrics.RUNS_FINISHED.labels(outcome.status).inc()
            metrics.RUN_SECONDS.observe(time.perf_counter() - started)

    async def _record(
        self, conn: Conn, run: dict[str, Any], settings: RunSettings, worker_id: str, outcome: Outcome
    ) -> tuple[bool, bool, bool]:
        """Write the run's end, fenced by the lease: (whether the run's stream is ours to close,
        whether its end is recorded by us, whether the queue may have work for a worker now).
        Safe to repeat after a write whose commit is unknown (its connection died)."""
        run_id, thread_id = str(run["run_id"]), str(run["thread_id"])
        if outcome.rolled_back:
            deleted = await run_end.delete_cancelled(conn, run_id, worker_id)
            await checkpoint_repo.delete_run(conn, thread_id, run_id)
            return True, deleted is not None, True
        finished = await run_end.finish(
            conn,
            run_id,
            worker_id,
            status=outcome.status,
            thread_status=outcome.thread_status,
            values=outcome.values,
            interrupts=outcome.interrupts,
            error=outcome.error,
            update_state=outcome.values is not None,
        )
        if not finished:
            status = await run_repo.status_of(conn, run_id)
            if status in run_repo.INFLIGHT:
                # Our lease lapsed and another worker owns the run now: its stream is theirs.
                log.warning("run %s: lease lost before finishing; result discarded", run_id)
                return False, False, True
            if status is None:
                if not await thread_repo.exists_any(conn, run["thread_id"]):
                    # The thread was deleted mid-run: drop checkpoints written after the delete.
                    await checkpoint_repo.delete_thread(conn, thread_id)
                return True, False, True
            if status != outcome.status:  # ended by someone else (the sweeper gave up on it)
                return True, False, True
            # already ended as we would have: an earlier try of this write committed before its
            # connection died
        if settings.temporary:
            await thread_repo.delete_any(conn, run["thread_id"])
            await checkpoint_repo.delete_thread(conn, thread_id)
        return True, True, finished is None or finished.thread_busy

    async def refuse(self, run: dict[str, Any], worker_id: str, exc: UnknownRunSettings) -> None:
        """A run whose stored settings this release cannot read ends in error, saying why."""
        run_id = str(run["run_id"])
        log.error("run %s: %s", run_id, exc)
        error = {"error": "UnknownRunSettings", "message": str(exc)}

        async def record(conn: Conn) -> run_end.Finished | None:
            return await run_end.finish(
                conn,
                run_id,
                worker_id,
                status="error",
                thread_status="error",
                values=None,
                interrupts={},
                error=error,
                update_state=False,
            )

        try:
            with contextlib.suppress(Exception):
                await self.broker.publish(run_id, "error", dumps(error), thread_id=str(run["thread_id"]))
            await with_retries(self.pool, record, what=f"refusing run {run_id}", limit=END_RETRY_SECONDS)
        finally:
            if self.lifecycle is not None:  # thread stream: the run never ran, it still ends
                with contextlib.suppress(Exception):
                    await self.lifecycle.ended_without_running(
                        str(run["thread_id"]), run_id, error=str(exc), code="refused", deferred=False
                    )
            with contextlib.suppress(Exception):
                await self.broker.end(run_id)
            metrics.RUNS_FINISHED.labels("error").inc()
