"""Reconciler: commits spend-log calls that have no receipt, with provenance `reconcile`.

LiteLLM's spend log is the source of truth for spend. After each run (`reconcile_run`) and on a
periodic sweep (`sweep`), every billable call without a receipt is committed through
`Ledger.commit_usage_fact`, the same idempotent path the stream uses: a call the stream already
charged is not charged again, a call the stream missed is charged late.

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
from cogni_app.reconcile.facts import account_of, fact_from_record, is_billable
from cogni_app.reconcile.records import SpendLogRecord, SpendLogSource

log = structlog.get_logger(__name__)


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
    ) -> None:
        self.ledger = ledger
        self.source = source
        self.executor_type_default = ExecutorType(executor_type_default)
        self.settle_seconds = settle_seconds
        """A sweep leaves calls younger than this to the stream (0: bill whatever is there)."""

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
    async def sweep(self, *, lookback: timedelta = timedelta(hours=1)) -> int:
        """Bill every recent call of a known account that has no receipt; sets `cogni_unbilled_calls`."""
        try:
            return await self._sweep(lookback)
        except Exception:
            metrics.RECONCILER_ERRORS.labels(stage="sweep").inc()
            raise

    async def _sweep(self, lookback: timedelta) -> int:
        now = datetime.now(UTC)
        settled_before = now - timedelta(seconds=self.settle_seconds)
        records = await self.source.since(now - lookback)
        by_account: dict[str, list[SpendLogRecord]] = {}
        for record in records:
            when = record.end_time or record.start_time
            if self.settle_seconds and when is not None and when > settled_before:
                continue
            account = account_of(record)
            if account is None:
                log.warning("spend-log call without an account; not billable", call_id=record.call_id)
                continue
            by_account.setdefault(account, []).append(record)
        missing: list[_Pending] = []
        for account, account_records in by_account.items():
            if not await self.ledger.account_exists(account):
                log.info(
                    "spend-log calls of an account this app does not know; skipped",
                    account=account,
                    calls=len(account_records),
                )
                continue
            missing.extend(await self._missing(await self._facts(account_records, account)))
        metrics.UNBILLED_CALLS.set(len(missing))
        return await self._commit(missing)

    async def run_periodically(self, interval_seconds: float, *, lookback: timedelta = timedelta(hours=1)) -> None:
        """Sweep every `interval_seconds` until cancelled; a failed sweep is logged and retried next time."""
        while True:
            try:
                created = await self.sweep(lookback=lookback)
                if created:
                    log.info("reconciler sweep billed missing calls", created=created)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("reconciler sweep failed; retrying at the next interval")
            await asyncio.sleep(interval_seconds)

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
        existing = await self.ledger.existing_references(
            str(SourceSystem.LITELLM), [p.fact.source_reference for p in pending]
        )
        return [p for p in pending if p.fact.source_reference not in existing]

    async def _commit(self, missing: list[_Pending]) -> int:
        created = 0
        for item in missing:
            try:
                result = await self.ledger.commit_usage_fact(item.fact, provenance="reconcile")
            except UnknownAccount:
                log.warning("account vanished before its call could be billed", call_id=item.record.call_id)
                continue
            if not result.created:
                continue  # the stream (or another reconciler) got there first
            created += 1
            metrics.RECONCILER_CALLS_RECONCILED.inc()
            ended = item.record.end_time or item.record.start_time
            if ended is not None:
                metrics.BILLING_LAG.observe(max((datetime.now(UTC) - ended).total_seconds(), 0.0))
            log.info(
                "reconciled a call the stream did not bill",
                call_id=item.record.call_id,
                run_id=item.fact.run_id,
                credits=result.charged_credits,
            )
        return created
