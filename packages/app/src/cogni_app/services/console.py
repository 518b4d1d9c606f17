"""The operator console's use cases: read-only views of accounts and the ledger, the reconciler's
state and a sweep on demand, and the Agent Server address plus a tenant credential for the browser.

The console's browser talks to the Agent Server directly (runs, threads, streams); the app only hands
it a short-lived service token for the tenant (billing account) the operator is looking at, the same
kind of token the app presents for that tenant's runs.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import asdict, dataclass
from typing import Any

from cogni_app.billing import Accounts
from cogni_app.billing.reads import BillingReads, Page
from cogni_app.deletion import DeletionPage, DeletionReads
from cogni_app.reconcile import Reconciler
from cogni_app.service_auth import ServiceTokenMinter

CHART_DAYS = 14


@dataclass(frozen=True)
class ServerAccess:
    """Where the browser finds the Agent Server and, for one tenant, a bearer token that expires."""

    server_url: str
    tenant: str | None
    token: str | None
    expires_at: int | None


class ConsoleService:
    def __init__(
        self,
        *,
        reads: BillingReads,
        deletion_reads: DeletionReads,
        accounts: Accounts,
        reconciler: Reconciler,
        tokens: ServiceTokenMinter | None,
        server_url: str,
        reconcile_interval_seconds: float,
    ) -> None:
        self._reads = reads
        self._deletion_reads = deletion_reads
        self._accounts = accounts
        self._reconciler = reconciler
        self._tokens = tokens
        self._server_url = server_url.rstrip("/")
        self._interval = reconcile_interval_seconds

    async def server_access(self, tenant: str | None) -> ServerAccess:
        """A token for `tenant` (an existing account) when the server takes the app's JWTs; else none."""
        if tenant is None or self._tokens is None:
            return ServerAccess(self._server_url, tenant, None, None)
        await self._accounts.get_account(tenant)  # UnknownAccount: 404
        return ServerAccess(
            self._server_url, tenant, self._tokens.mint(tenant), int(time.time()) + self._tokens.ttl_seconds
        )

    async def overview(self) -> dict[str, Any]:
        """Today's credits issued and charged, receipts per provenance, charges per hour, the last sweep."""
        return {
            "today": await self._reads.today(),
            "charged_per_hour": await self._reads.charged_per_hour(),
            "credits_per_day": await self._reads.credits_per_day(None, days=CHART_DAYS),
            "reconcile": self.reconcile_status(),
        }

    async def accounts(self, *, q: str | None, balance: str | None, limit: int, offset: int) -> Page:
        return await self._reads.accounts(q=q, balance=balance, limit=limit, offset=offset)

    async def account(self, account_id: str) -> dict[str, Any]:
        account = await self._accounts.get_account(account_id)
        return {
            "id": account.id,
            "name": account.name,
            "balance_credits": account.balance_credits,
            "created_at": account.created_at,
            "api_keys": await self._reads.api_keys(account_id),
            "credits_per_day": await self._reads.credits_per_day(account_id, days=CHART_DAYS),
        }

    async def receipts(
        self, account_id: str, *, provenance: str | None, run_id: str | None, limit: int, offset: int
    ) -> Page:
        await self._exists(account_id)
        return await self._reads.receipts(account_id, provenance=provenance, run_id=run_id, limit=limit, offset=offset)

    async def ledger(self, account_id: str, *, reason: str | None, limit: int, offset: int) -> Page:
        await self._exists(account_id)
        return await self._reads.ledger(account_id, reason=reason, limit=limit, offset=offset)

    def reconcile_status(self) -> dict[str, Any]:
        last = self._reconciler.last_sweep
        return {
            "interval_seconds": self._interval,
            "last_sweep": asdict(last) if last is not None else None,
        }

    async def reconcile_now(self) -> dict[str, Any]:
        """One sweep now, as the periodic job does it; its failure is reported, not raised."""
        with contextlib.suppress(Exception):  # recorded in last_sweep.error and counted by the reconciler
            await self._reconciler.sweep(trigger="operator")
        return self.reconcile_status()

    async def deletions(self, *, status: str | None, limit: int, offset: int) -> DeletionPage:
        """Deletion jobs, newest request first (status `in_progress` or `done`)."""
        return await self._deletion_reads.jobs(status=status, limit=limit, offset=offset)

    async def _exists(self, account_id: str) -> None:
        await self._accounts.get_account(account_id)
