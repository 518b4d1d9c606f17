"""An account with credits and a virtual key, and a ledger (markup 2) on the app database that shares its
Postgres with the spend-log sink's table: what the billing and reconciler tests start from."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal

from cogni_app.billing import Accounts, Ledger
from cogni_app.db import AppDatabase


@dataclass
class World:
    url: str
    db: AppDatabase
    ledger: Ledger
    account: str
    vkey: str


async def make_world(
    sink_and_app_db: tuple[str, AppDatabase], name: str, *, is_free_model: Callable[[str], bool] = lambda _: False
) -> World:
    url, db = sink_and_app_db
    accounts = Accounts(db)
    account = await accounts.create_account(name, initial_credits=1_000_000)
    vkey = await accounts.create_virtual_key(account.id)
    return World(url, db, Ledger(db, markup=Decimal("2.0"), is_free_model=is_free_model), account.id, vkey.id)
