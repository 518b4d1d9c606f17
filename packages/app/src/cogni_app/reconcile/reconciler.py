"""Reconciler: commits spend-log calls that have no receipt, with provenance `reconcile`.

LiteLLM's spend log is the source of truth for spend. After each run (`reconcile_run`) and on a
periodic sweep (`sweep`), every billable call without a receipt is committed through
`Ledger.commit_usage_fact`, the same idempotent path the stream uses: a call the stream already
charged is not charged again, a call the stream missed is charged late, and a call charged without a
cost whose spend log now has one is charged its cost once, as a correction.

At start the app sweeps at once and then every second or so for a catch-up period
(`run_periodically(catchup_seconds=...)`): the calls of runs an earlier process left in flight are
billed within seconds of their end, not at the next periodic sweep. A failed charge starts the same
catch-up again (`request_catchup`), and a failed sweep is retried within seconds, not at the next
interval. `cogni-app reconcile-worker` runs the sweep every second in a process of its own, so calls
are billed also while no app process is alive (cogni_app.worker).

The sweep reads from a durable cursor (`reconcile_cursors` in the app database): every call after the
last committed position, however old, so an app or spend-log outage of any length loses no call. The
cursor advances only past calls that are billed (or not billable), and stays `cursor_margin_seconds`
behind now so that rows of sink transactions still in flight are read again.

A pass that fails (spend log unreachable, ledger error) is counted in
`cogni_reconciler_errors_total{stage}` by the pass itself and re-raised: its caller (the relay after a
run, `run_periodically` for the sweep) logs it and carries on, and the next pass retries.
"""

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import structlog

from cogni_ai_core import ExecutorType, SourceSystem, UsageFact
from cogni_ai_core.observability import traced
from cogni_app import metrics
from cogni_app.billing import Ledger, UnknownAccount
from cogni_app.reconcile.cursor import ReconcileCursors
from cogni_app.reconcile.facts import account_of, fact_from_record, is_billable
from cogni_app.reconcile.records import Position, SpendLogRecord, SpendLogSource
from cogni_app.reconcile.status import MAX_LISTED_DIFFERENCES, SweepReport

log = structlog.get_logger(__name__)
FAILED_SWEEP_FAST_RETRIES, FAILED_SWEEP_MAX_DELAY_SECONDS = 10, 30.0
"""A failed sweep is retried every catch-up interval 10 times, then backing off to every 30 s (or the interval)."""


@dataclass(frozen=True)
class _Pending:
    fact: UsageFact
    record: SpendLogRecord


class Reconciler:
    """Fills receipts from the spend log. Safe to run concurrently with the stream and with itself."""

    def __init__(
        self,
        ledger: Ledger,
        source: SpendLogSource,
        *,
        executor_type_default: str = "langgraph_server",
        settle_seconds: float = 0.0,
        cursors: ReconcileCursors | None = None,
        page_size: int = 500,
        cursor_margin_seconds: float = 60.0,
        retention_days: int = 0,
    ) -> None:
        self.ledger = ledger
        self.source = source
        self.executor_type_default = ExecutorType(executor_type_default)
        self.settle_seconds = settle_seconds
        """A sweep leaves calls younger than this to the stream (0: bill whatever is there)."""
        self.cursors = cursors or ReconcileCursors(ledger.db)
        self.page_size = page_size
        self.cursor_margin_seconds = cursor_margin_seconds
        """The cursor stays this far behind now: a sink transaction still in flight commits rows behind it."""
        self.retention_days = retention_days
        """After a clean sweep, delete spend-log rows older than this behind the cursor (0: keep them all)."""
        self.last_sweep: SweepReport | None = None
        """The latest sweep (running or finished), for the operator console."""
        self._catchup_requested = asyncio.Event()

    @traced("reconcile.run", lambda self, *a, **kw: {"cogni.run_id": str(kw.get("run_id", a[-1] if a else ""))})
    async def reconcile_run(self, billing_account_id: str, run_id: str) -> int:
        """Bill the run's calls that have no receipt; returns the number of receipts created."""
        try:
            return await self._reconcile_run(billing_account_id, run_id)
        except Exception:
            metrics.RECONCILER_ERRORS.labels(stage="after_run").inc()
            raise

    async def _reconcile_run(self, billing_account_id: str, run_id: str) -> int:
        records = await self.source.for_run(billing_account_id, run_id)
        mine = [r for r in records if account_of(r) == billing_account_id and r.run_id == run_id]
        if not await self.ledger.account_exists(billing_account_id):
            raise UnknownAccount(f"no billing account {billing_account_id!r}")
        pending = await self._facts(mine, billing_account_id)
        missing = await self._missing(pending)
        return await self._commit(missing)

    @traced("reconcile.sweep")
    async def sweep(self, *, trigger: str = "interval") -> int:
        """Bill every call after the durable cursor, however old, then advance the cursor.

        Returns the receipts created (corrections included). Sets `cogni_unbilled_calls` (calls found
        without a receipt), `cogni_unbilled_calls_outstanding` (still unbilled after the pass) and
        `cogni_reconciler_cursor_lag_seconds`; `last_sweep` keeps what it saw for the console.
        """
        now = datetime.now(UTC)
        committed = await self.cursors.load(self.source.name)
        report = self.last_sweep = SweepReport(
            trigger=trigger, started_at=now, window_start=committed[0] if committed else None
        )
        try:
            report.created = await self._sweep(report)
            return report.created
        except Exception as exc:
            metrics.RECONCILER_ERRORS.labels(stage="sweep").inc()
            report.error = f"{type(exc).__name__}: {exc}"
            raise
        finally:
            report.finished_at = datetime.now(UTC)

    async def _sweep(self, report: SweepReport) -> int:
        now = datetime.now(UTC)
        settled_before = now - timedelta(seconds=self.settle_seconds)
        horizon: Position = (now - timedelta(seconds=self.cursor_margin_seconds), "")
        committed = await self.cursors.load(self.source.name)
        read_from = committed
        known: dict[str, bool] = {}
        found = created = 0
        try:
            while True:
                page = await self.source.after(read_from, limit=self.page_size)
                ready = self._settled(page, settled_before)
                pending = await self._pending_of(ready, known)
                found += len(pending)
                report.examined += len(ready)
                report.missing = found
                room = MAX_LISTED_DIFFERENCES - len(report.differences)
                report.differences.extend(_difference(p) for p in pending[: max(room, 0)])
                for index, item in enumerate(pending):
                    try:
                        created += await self._commit_one(item)
                    except Exception:
                        metrics.UNBILLED_OUTSTANDING.set(len(pending) - index)
                        safe = max((r.position for r in ready if r.position < item.record.position), default=None)
                        await self._advance(safe, horizon)
                        raise
                if ready:
                    read_from = ready[-1].position
                    await self._advance(read_from, horizon)
                if len(ready) < len(page) or len(page) < self.page_size:
                    break
        finally:
            metrics.UNBILLED_CALLS.set(found)
        metrics.UNBILLED_OUTSTANDING.set(0)
        await self._prune()
        return created

    async def _prune(self) -> None:
        """Retention, only behind the committed cursor: a call not yet reconciled is never deleted."""
        if self.retention_days <= 0:
            return
        cursor = await self.cursors.load(self.source.name)
        if cursor is None:
            return
        deleted = await self.source.prune(keep_days=self.retention_days, reconciled_through=cursor)
        if deleted:
            metrics.SPEND_LOG_PRUNED.inc(deleted)
            log.info("spend-log retention deleted reconciled rows", deleted=deleted, days=self.retention_days)

    def _settled(self, page: list[SpendLogRecord], settled_before: datetime) -> list[SpendLogRecord]:
        """The page up to its first call younger than the settle time (left to the stream, read next pass)."""
        if not self.settle_seconds:
            return page
        for index, record in enumerate(page):
            when = record.end_time or record.start_time
            if when is not None and when > settled_before:
                return page[:index]
        return page

    async def _pending_of(self, records: list[SpendLogRecord], known: dict[str, bool]) -> list[_Pending]:
        """The billable calls of known accounts among `records` that need a receipt or a correction."""
        by_account: dict[str, list[SpendLogRecord]] = {}
        for record in records:
            account = account_of(record)
            if account is None:
                log.warning("spend-log call without an account; not billable", call_id=record.call_id)
                continue
            by_account.setdefault(account, []).append(record)
        pending: list[_Pending] = []
        for account, account_records in by_account.items():
            if account not in known:
                known[account] = await self.ledger.account_exists(account)
                if not known[account]:
                    log.info("spend-log calls of an account this app does not know; skipped", account=account)
            if known[account]:
                pending.extend(await self._missing(await self._facts(account_records, account)))
        return sorted(pending, key=lambda p: p.record.position)

    async def _advance(self, position: Position | None, horizon: Position) -> None:
        """Commit the cursor, never past the horizon: rows of transactions still in flight may land behind it."""
        if position is not None:
            await self.cursors.advance(self.source.name, min(position, horizon))
        saved = await self.cursors.load(self.source.name)
        if saved is not None:
            metrics.RECONCILER_CURSOR_LAG.set(max((datetime.now(UTC) - saved[0]).total_seconds(), 0.0))

    def request_catchup(self, reason: str) -> None:
        """Sweep now and then every catch-up interval for the catch-up period: a charge (or a post-run
        reconcile) just failed, so a call may be waiting for the spend log. No-op unless `run_periodically`
        runs in this process."""
        log.info("reconciler catch-up requested", reason=reason)
        self._catchup_requested.set()

    async def run_periodically(
        self, interval_seconds: float, *, catchup_seconds: float = 0.0, catchup_interval_seconds: float = 1.0
    ) -> None:
        """Sweep at once, then every `catchup_interval_seconds` for the first `catchup_seconds`, then every
        `interval_seconds`, until cancelled.

        The catch-up phase is for a restart: runs the previous process had in flight keep running on the
        Agent Server, and nobody follows their streams any more, so their calls (ending while the app was
        down or just after it came back) have only the spend log to be billed from. `request_catchup()`
        starts the same phase again (a charge failed). A failed sweep (database or spend log unreachable)
        is retried every `catchup_interval_seconds` ten times, then less and less often, never less often
        than every `FAILED_SWEEP_MAX_DELAY_SECONDS` or the interval, and the catch-up phase runs on for
        `catchup_seconds` after the last failure: an outage is followed by a sweep within about a second or
        two of its end, and rows the sink writes late are billed within a second of their arrival.
        """
        loop = asyncio.get_running_loop()
        catchup_until = loop.time() + catchup_seconds
        trigger = "startup"
        failures = 0
        while True:
            try:
                created = await self.sweep(trigger=trigger)
                failures = 0
                if created:
                    log.info("reconciler sweep billed missing calls", created=created, trigger=trigger)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                failures += 1
                if failures == 1:  # the traceback once; an outage then logs one line per retry
                    log.exception("reconciler sweep failed; retrying soon")
                else:
                    log.warning("reconciler sweep failed again", failures=failures, error=repr(exc)[:300])
                catchup_until = max(catchup_until, loop.time() + catchup_seconds)  # rows the outage held back
            if failures:
                delay = catchup_interval_seconds * 2 ** min(max(failures - FAILED_SWEEP_FAST_RETRIES, 0), 16)
                delay, trigger = min(delay, FAILED_SWEEP_MAX_DELAY_SECONDS, interval_seconds), "retry"
            elif loop.time() + catchup_interval_seconds < catchup_until:
                delay, trigger = catchup_interval_seconds, "catchup"
            else:
                delay, trigger = interval_seconds, "interval"
            if await self._wait_for_catchup_request(delay):
                catchup_until = loop.time() + catchup_seconds
                trigger = "catchup"

    async def _wait_for_catchup_request(self, seconds: float) -> bool:
        """Sleep `seconds`, or less when `request_catchup()` is called meanwhile (then True).

        `asyncio.timeout`, not `wait_for`: `wait_for` on Python 3.11 has races between its own timeout and
        an outside cancellation; a CI run once hung 300 s in a test that cancels this loop and awaits it.
        That race is a suspect, not a proven cause (300 cancellations timed against a 0.5 ms `wait_for`
        did not reproduce it)."""
        try:
            async with asyncio.timeout(seconds):
                await self._catchup_requested.wait()
        except TimeoutError:
            return False
        self._catchup_requested.clear()
        return True

    async def _facts(self, records: list[SpendLogRecord], account: str) -> list[_Pending]:
        pending: list[_Pending] = []
        default_key: str | None = None
        looked_up = False
        for record in records:
            if not is_billable(record):
                continue
            if record.run_id is None:
                log.warning("spend-log call without run_id metadata; cannot attribute it", call_id=record.call_id)
                continue
            if not record.metadata.get("virtual_key_id") and not looked_up:
                default_key = await self.ledger.default_virtual_key(account)
                looked_up = True
            pending.append(
                _Pending(
                    fact_from_record(
                        record,
                        billing_account_id=account,
                        default_virtual_key_id=default_key,
                        executor_type_default=self.executor_type_default,
                    ),
                    record,
                )
            )
        return pending

    async def _missing(self, pending: list[_Pending]) -> list[_Pending]:
        """Calls without a receipt, and calls charged without a cost whose spend log now has one."""
        states = await self.ledger.receipt_states(str(SourceSystem.LITELLM), [p.fact.source_reference for p in pending])
        out = []
        for item in pending:
            needs_cost = states.get(item.fact.source_reference)
            if needs_cost is None or (needs_cost and item.fact.cost_usd is not None):
                out.append(item)
        return out

    async def _commit(self, missing: list[_Pending]) -> int:
        created = 0
        for item in missing:
            created += await self._commit_one(item)
        return created

    async def _commit_one(self, item: _Pending) -> int:
        """1 when this pass created the receipt (or its late-cost correction), else 0."""
        try:
            result = await self.ledger.commit_usage_fact(item.fact, provenance="reconcile")
        except UnknownAccount:
            log.warning("account vanished before its call could be billed", call_id=item.record.call_id)
            return 0
        if not result.created and not result.corrected_credits:
            return 0  # the stream (or another reconciler) got there first
        metrics.RECONCILER_CALLS_RECONCILED.inc()
        ended = item.record.end_time or item.record.start_time
        if ended is not None:
            metrics.BILLING_LAG.observe(max((datetime.now(UTC) - ended).total_seconds(), 0.0))
        log.info(
            "reconciled a call the stream did not bill" if result.created else "charged a late cost as a correction",
            call_id=item.record.call_id,
            run_id=item.fact.run_id,
            credits=result.charged_credits if result.created else result.corrected_credits,
        )
        return 1


def _difference(pending: _Pending) -> dict[str, object]:
    """A spend-log call without a receipt, as the console lists it."""
    fact, record = pending.fact, pending.record
    return {
        "call_id": record.call_id,
        "billing_account_id": fact.billing_account_id,
        "run_id": fact.run_id,
        "model": fact.model,
        "cost_usd": fact.cost_usd,
        "ended_at": record.end_time or record.start_time,
    }
