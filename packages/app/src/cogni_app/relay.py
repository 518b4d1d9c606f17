"""The relay: pumps every run to completion and fans its events out to the UI and to billing.

The pump is a task owned by the relay, never by the HTTP request: a client that goes away only
stops reading its UI queue; the run, its billing and the post-run reconciliation carry on. The UI
queue gets every event but `usage_report` and always ends with `done` (after `error` on failure).
A billing failure is never surfaced to the user. A commit (or the post-run reconcile) that fails on a
transient database error (a Postgres restart, a failover) is retried with a short backoff for up to
`commit_retry_seconds`, so the call is billed within about a second of the database being back; the
retry is safe because the ledger charges each call once by its idempotency key, whether or not the
failed attempt committed. What still fails is logged, counted, and hands over to the reconciler
(`on_billing_failure`: its catch-up sweeps take the charge from the spend log).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import structlog
from prometheus_client import Counter, Gauge

from cogni_ai_core import AiEvent, AiExecutionErrorCode, Done, ErrorEvent, UsageFact, UsageReport
from cogni_app.db import is_transient
from cogni_app.executors.port import GraphFinal, GraphRunResult

log = structlog.get_logger(__name__)

USAGE_COMMITS = Counter(
    "cogni_app_relay_usage_commits_total",
    "usage_report events the billing subscriber committed, by outcome (created, replay, failed)",
    ["outcome"],
)
USAGE_BILLED_ON_CANCEL = Counter(
    "cogni_app_relay_usage_billed_on_cancel_total",
    "LLM calls of a cancelled run (shutdown past the drain) billed from what the provider had collected",
)
RUNS_IN_FLIGHT = Gauge("cogni_app_relay_runs_in_flight", "Runs the relay is still pumping or billing")
BILLING_RETRIES = Counter(
    "cogni_app_relay_billing_retries_total",
    "Usage commits and post-run reconciles retried after a transient database error, by stage",
    ["stage"],
)
RETRY_FIRST_DELAY_SECONDS, RETRY_MAX_DELAY_SECONDS = 0.1, 1.0
RECONCILE_AFTER_RUN = Counter(
    "cogni_app_relay_reconciled_receipts_total",
    "Receipts the post-run reconciliation created (usage the stream missed)",
)


class UsageCommitter(Protocol):
    async def commit_usage_fact(
        self, fact: UsageFact, *, provenance: Any, ingress_request_id: str | None = None
    ) -> Any: ...


class RunReconciler(Protocol):
    async def reconcile_run(self, billing_account_id: str, run_id: str) -> int: ...


@dataclass
class RelayedRun:
    """One run as the relay sees it. Read `ui_events()`; await `billed` or `finished` if needed."""

    run_id: str
    billing_account_id: str
    _ui: asyncio.Queue[AiEvent] = field(default_factory=asyncio.Queue)
    billed: asyncio.Event = field(default_factory=asyncio.Event)
    final: GraphFinal | None = None
    task: asyncio.Task[None] | None = None
    _ui_closed: bool = False

    def _to_ui(self, event: AiEvent) -> None:
        if self._ui_closed:
            return
        self._ui.put_nowait(event)
        if event.type == "done":
            self._ui_closed = True

    def _close_ui(self, code: AiExecutionErrorCode) -> None:
        if not self._ui_closed:
            self._to_ui(ErrorEvent(error=code))
            self._to_ui(Done())

    async def next_ui_event(self) -> AiEvent:
        return await self._ui.get()

    async def ui_events(self) -> AsyncIterator[AiEvent]:
        """Everything but usage_report, ending with done. Stopping early does not stop the run."""
        while True:
            event = await self._ui.get()
            yield event
            if event.type == "done":
                return

    async def finished(self) -> None:
        """Wait for the pump, billing and post-run reconciliation."""
        if self.task is not None:
            await asyncio.shield(self.task)


class Relay:
    """Owns the pump tasks of every run in flight; `aclose()` drains them on shutdown."""

    def __init__(
        self,
        *,
        ledger: UsageCommitter | None,
        reconciler: RunReconciler | None = None,
        reconcile_delay_seconds: float = 2.0,
        final_timeout_seconds: float = 10.0,
        commit_retry_seconds: float = 60.0,
        on_billing_failure: Callable[[str], None] | None = None,
    ) -> None:
        self._ledger = ledger
        self._reconciler = reconciler
        self._reconcile_delay = reconcile_delay_seconds
        self._final_timeout = final_timeout_seconds
        self._retry_seconds = commit_retry_seconds
        self._on_billing_failure = on_billing_failure
        self._tasks: set[asyncio.Task[None]] = set()

    def start(
        self,
        result: GraphRunResult,
        *,
        run_id: str,
        billing_account_id: str,
        ingress_request_id: str | None = None,
        on_finished: Callable[[], Awaitable[None]] | None = None,
    ) -> RelayedRun:
        """Pump the run; `on_finished` (the credit hold's release) runs once it has ended and its usage is
        committed, however it ended (completion, failure, cancellation)."""
        run = RelayedRun(run_id=run_id, billing_account_id=billing_account_id)
        task = asyncio.create_task(self._pump(run, result, ingress_request_id, on_finished), name=f"relay:{run_id}")
        run.task = task
        self._tasks.add(task)
        RUNS_IN_FLIGHT.inc()

        def _done(t: asyncio.Task[None]) -> None:
            self._tasks.discard(t)
            RUNS_IN_FLIGHT.dec()

        task.add_done_callback(_done)
        return run

    async def _pump(
        self,
        run: RelayedRun,
        result: GraphRunResult,
        ingress_request_id: str | None,
        on_finished: Callable[[], Awaitable[None]] | None,
    ) -> None:
        billing: asyncio.Queue[UsageReport | None] = asyncio.Queue()
        biller = asyncio.create_task(self._bill(run, billing, ingress_request_id))
        try:
            try:
                async for event in result.stream:
                    if isinstance(event, UsageReport):
                        billing.put_nowait(event)
                    else:
                        run._to_ui(event)
            except asyncio.CancelledError:
                run._close_ui("aborted")
                self._bill_collected(result, billing)
                raise
            except Exception as exc:
                log.error("relay_stream_failed", run_id=run.run_id, error=repr(exc)[:500])
                run._close_ui("internal")
            run._close_ui("internal")  # a stream that ended without done is a bug; the UI still ends
            with contextlib.suppress(asyncio.TimeoutError):
                run.final = await asyncio.wait_for(asyncio.shield(result.final), timeout=self._final_timeout)
        finally:
            billing.put_nowait(None)
            await asyncio.shield(biller)
            if on_finished is not None:
                await self._finished(run, on_finished)
        await self._reconcile(run)

    @staticmethod
    async def _finished(run: RelayedRun, on_finished: Callable[[], Awaitable[None]]) -> None:
        try:
            await on_finished()
        except Exception as exc:  # the hold expires on its own; the run's outcome is unaffected
            log.error("relay_on_finished_failed", run_id=run.run_id, error=repr(exc)[:500])

    @staticmethod
    def _bill_collected(result: GraphRunResult, billing: asyncio.Queue[UsageReport | None]) -> None:
        """A cancelled run: its usage_report events never come, but the calls were made. The provider settled
        its final with every call it had collected; bill those (a call already billed is a replay)."""
        final = result.final
        if isinstance(final, asyncio.Future) and final.done() and not final.cancelled():
            facts = final.result().usage_facts
            for fact in facts:
                billing.put_nowait(UsageReport(fact=fact))
            if facts:
                USAGE_BILLED_ON_CANCEL.inc(len(facts))

    async def _bill(
        self, run: RelayedRun, queue: asyncio.Queue[UsageReport | None], ingress_request_id: str | None
    ) -> None:
        try:
            while (report := await queue.get()) is not None:
                if self._ledger is not None:
                    await self._commit(run, report.fact, ingress_request_id)
        finally:
            run.billed.set()

    async def _commit(self, run: RelayedRun, fact: UsageFact, ingress_request_id: str | None) -> None:
        assert self._ledger is not None
        ledger = self._ledger
        try:
            outcome = await self._retrying(
                "commit",
                lambda: ledger.commit_usage_fact(fact, provenance="stream", ingress_request_id=ingress_request_id),
            )
        except Exception as exc:
            USAGE_COMMITS.labels(outcome="failed").inc()
            log.error("usage_commit_failed", run_id=run.run_id, usage_unit_id=fact.usage_unit_id, error=repr(exc)[:500])
            self._billing_failed(f"usage commit of run {run.run_id} failed")
            return
        USAGE_COMMITS.labels(outcome="created" if getattr(outcome, "created", True) else "replay").inc()

    async def _retrying(self, stage: str, attempt: Callable[[], Awaitable[Any]]) -> Any:
        """`attempt()`, again after a transient database error, backing off from 0.1 s to 1 s, for up to
        `commit_retry_seconds`; other errors and the last transient one are raised."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._retry_seconds
        delay = RETRY_FIRST_DELAY_SECONDS
        while True:
            try:
                return await attempt()
            except Exception as exc:
                if not is_transient(exc) or loop.time() + delay > deadline:
                    raise
                BILLING_RETRIES.labels(stage=stage).inc()
                log.warning("billing_retry_after_database_error", stage=stage, error=repr(exc)[:300], delay=delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, RETRY_MAX_DELAY_SECONDS)

    def _billing_failed(self, reason: str) -> None:
        if self._on_billing_failure is not None:
            self._on_billing_failure(reason)

    async def _reconcile(self, run: RelayedRun) -> None:
        """Catch what the stream missed; the spend-log sink writes asynchronously, hence the delay."""
        reconciler = self._reconciler
        if reconciler is None:
            return
        await asyncio.sleep(self._reconcile_delay)
        try:
            created = await self._retrying(
                "reconcile", lambda: reconciler.reconcile_run(run.billing_account_id, run.run_id)
            )
        except Exception as exc:
            log.error("post_run_reconcile_failed", run_id=run.run_id, error=repr(exc)[:500])
            self._billing_failed(f"post-run reconcile of run {run.run_id} failed")
            return
        if created:
            RECONCILE_AFTER_RUN.inc(created)
            log.warning("post_run_reconcile_billed_missing_calls", run_id=run.run_id, created=created)

    @property
    def in_flight(self) -> int:
        return len(self._tasks)

    async def aclose(self, drain_seconds: float = 30.0) -> None:
        """Let runs in flight finish (and bill) for up to `drain_seconds`, then cancel the rest."""
        tasks = list(self._tasks)
        if not tasks:
            return
        _, pending = await asyncio.wait(tasks, timeout=drain_seconds)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending, timeout=5.0)
