"""Operator use cases: accounts, credits, API keys, a run's receipts and its on-demand reconciliation."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from cogni_app.billing import Account, Accounts, Ledger, VirtualKey
from cogni_app.reconcile import Reconciler


@dataclass(frozen=True)
class Grant:
    balance_credits: int
    reference: str


@dataclass(frozen=True)
class IssuedKey:
    """A new virtual key and an API key on it; the plaintext `api_key` exists only here."""

    virtual_key: VirtualKey
    api_key: str


class OperatorService:
    """Raises UnknownAccount for an account that does not exist and InvalidGrant for a grant the ledger refuses."""

    def __init__(self, *, accounts: Accounts, ledger: Ledger, reconciler: Reconciler) -> None:
        self._accounts = accounts
        self._ledger = ledger
        self._reconciler = reconciler

    async def create_account(self, name: str, *, initial_credits: int) -> Account:
        return await self._accounts.create_account(name, initial_credits=initial_credits)

    async def account(self, account_id: str) -> Account:
        return await self._accounts.get_account(account_id)

    async def balance(self, account_id: str) -> int:
        await self._accounts.get_account(account_id)
        return await self._ledger.balance(account_id)

    async def grant_credits(self, account_id: str, amount: int, *, reason: str, reference: str | None) -> Grant:
        """Idempotent per (account, reason, reference); without a reference the grant gets a fresh one."""
        reference = reference or f"admin-{uuid.uuid4()}"
        balance = await self._accounts.grant_credits(account_id, amount, reason=reason, reference=reference)
        return Grant(balance_credits=balance, reference=reference)

    async def issue_api_key(self, account_id: str, label: str) -> IssuedKey:
        vkey = await self._accounts.create_virtual_key(account_id, label)
        return IssuedKey(virtual_key=vkey, api_key=await self._accounts.create_api_key(account_id, vkey.id))

    async def run_receipts(self, run_id: str) -> list[dict[str, Any]]:
        return await self._ledger.receipts_for_run(run_id)

    async def reconcile_run(self, account_id: str, run_id: str) -> int:
        """Bill now whatever of this run the spend log has and the ledger lacks (idempotent)."""
        return await self._reconciler.reconcile_run(account_id, run_id)
