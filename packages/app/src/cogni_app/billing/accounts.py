"""Accounts, virtual keys, API keys (stored as SHA-256 hashes) and credit grants."""

import hashlib
import secrets
from typing import Any

from psycopg import sql
from psycopg.errors import ForeignKeyViolation
from psycopg.types.json import Jsonb

from cogni_app.billing.errors import InvalidGrant, UnknownAccount, UnknownApiKey
from cogni_app.billing.types import RESERVED_LEDGER_REASONS, Account, ApiKeyPrincipal, VirtualKey
from cogni_app.db import AppDatabase

API_KEY_PREFIX = "cogni_"


def hash_api_key(plaintext: str) -> str:
    """SHA-256 hex of the key: all the database ever holds."""
    return hashlib.sha256(plaintext.encode("utf-8")).hexdigest()


def _account(row: dict[str, Any]) -> Account:
    return Account(
        id=str(row["id"]),
        name=str(row["name"]),
        balance_credits=int(row["balance_credits"]),
        created_at=row["created_at"],
    )


class Accounts:
    """Operator-side account administration and API-key resolution."""

    def __init__(self, db: AppDatabase) -> None:
        self.db = db

    async def create_account(self, name: str, *, initial_credits: int = 0) -> Account:
        """A new account; initial credits (if any) are a `grant` ledger row like any other."""
        if not name.strip():
            raise ValueError("account name must not be blank")
        if initial_credits < 0:
            raise ValueError("initial credits cannot be negative")
        async with self.db.pool.connection() as conn, conn.transaction():
            cur = await conn.execute(
                "INSERT INTO billing_accounts (name, balance_credits) VALUES (%s, %s) RETURNING *",
                (name, initial_credits),
            )
            row = await cur.fetchone()
            assert row is not None
            if initial_credits:
                await conn.execute(
                    "INSERT INTO credit_ledger (billing_account_id, amount, balance_after, reason, reference)"
                    " VALUES (%s, %s, %s, 'grant', 'initial')",
                    (row["id"], initial_credits, initial_credits),
                )
        return _account(row)

    async def get_account(self, account_id: str) -> Account:
        async with self.db.pool.connection() as conn:
            cur = await conn.execute("SELECT * FROM billing_accounts WHERE id = %s", (account_id,))
            row = await cur.fetchone()
        if row is None:
            raise UnknownAccount(f"no billing account {account_id!r}")
        return _account(row)

    async def grant_credits(self, account_id: str, amount: int, *, reason: str, reference: str) -> int:
        """Add (or, negative, remove) credits with a ledger row; returns the balance.

        Idempotent per account on (reason, reference): repeating a grant changes nothing.
        """
        if amount == 0:
            raise InvalidGrant("amount must not be 0: a grant must change the balance")
        if reason in RESERVED_LEDGER_REASONS:
            raise InvalidGrant(f"{reason!r} is reserved for the ledger's charges")
        if not reason.strip() or not reference.strip():
            raise InvalidGrant("a grant needs a reason and a reference")
        async with self.db.pool.connection() as conn, conn.transaction():
            cur = await conn.execute(
                "SELECT balance_credits FROM billing_accounts WHERE id = %s FOR UPDATE", (account_id,)
            )
            row = await cur.fetchone()
            if row is None:
                raise UnknownAccount(f"no billing account {account_id!r}")
            balance = int(row["balance_credits"]) + amount
            cur = await conn.execute(
                "INSERT INTO credit_ledger (billing_account_id, amount, balance_after, reason, reference, metadata)"
                " VALUES (%s, %s, %s, %s, %s, %s)"
                " ON CONFLICT (billing_account_id, reason, reference) WHERE reason <> 'charge_receipt'"
                " DO NOTHING RETURNING id",
                (account_id, amount, balance, reason, reference, Jsonb({})),
            )
            if await cur.fetchone() is None:
                return int(row["balance_credits"])
            await conn.execute("UPDATE billing_accounts SET balance_credits = %s WHERE id = %s", (balance, account_id))
        return balance

    async def create_virtual_key(self, account_id: str, label: str = "default") -> VirtualKey:
        """A virtual key charges to its account; the account's first key is its default."""
        async with self.db.pool.connection() as conn:
            try:
                cur = await conn.execute(
                    "INSERT INTO virtual_keys (billing_account_id, label) VALUES (%s, %s) RETURNING id",
                    (account_id, label),
                )
            except ForeignKeyViolation as exc:
                raise UnknownAccount(f"no billing account {account_id!r}") from exc
            row = await cur.fetchone()
        assert row is not None
        return VirtualKey(id=str(row["id"]), billing_account_id=account_id, label=label)

    async def create_api_key(self, account_id: str, virtual_key_id: str) -> str:
        """Mint an API key. The plaintext is returned once; only its SHA-256 hash is stored."""
        plaintext = API_KEY_PREFIX + secrets.token_urlsafe(32)
        async with self.db.pool.connection() as conn:
            try:
                await conn.execute(
                    "INSERT INTO api_keys (key_hash, key_prefix, billing_account_id, virtual_key_id)"
                    " VALUES (%s, %s, %s, %s)",
                    (hash_api_key(plaintext), plaintext[: len(API_KEY_PREFIX) + 4], account_id, virtual_key_id),
                )
            except ForeignKeyViolation as exc:
                raise UnknownAccount(f"no virtual key {virtual_key_id!r} on account {account_id!r}") from exc
        return plaintext

    async def resolve_api_key(self, plaintext: str) -> ApiKeyPrincipal:
        """The principal of a presented key (looked up by hash); unknown or revoked -> UnknownApiKey."""
        async with self.db.pool.connection() as conn:
            cur = await conn.execute(
                "SELECT billing_account_id, virtual_key_id FROM api_keys WHERE key_hash = %s AND revoked_at IS NULL",
                (hash_api_key(plaintext),),
            )
            row = await cur.fetchone()
        if row is None:
            raise UnknownApiKey("unknown or revoked API key")
        return ApiKeyPrincipal(
            billing_account_id=str(row["billing_account_id"]), virtual_key_id=str(row["virtual_key_id"])
        )

    async def revoke_api_key(self, plaintext: str) -> bool:
        """Revoke a key; True if it existed and was active."""
        async with self.db.pool.connection() as conn:
            cur = await conn.execute(
                "UPDATE api_keys SET revoked_at = now() WHERE key_hash = %s AND revoked_at IS NULL RETURNING id",
                (hash_api_key(plaintext),),
            )
            return await cur.fetchone() is not None

    async def delete_account_data(self, account_id: str) -> dict[str, int]:
        """Delete an account and everything of it; returns row counts per table."""
        tables = (
            "billing_alerts",
            "credit_holds",
            "charge_corrections",
            "credit_ledger",
            "charge_receipts",
            "api_keys",
            "virtual_keys",
        )
        counts: dict[str, int] = {}
        async with self.db.pool.connection() as conn, conn.transaction():
            cur = await conn.execute("SELECT 1 FROM billing_accounts WHERE id = %s FOR UPDATE", (account_id,))
            if await cur.fetchone() is None:
                raise UnknownAccount(f"no billing account {account_id!r}")
            for table in tables:
                query = sql.SQL("DELETE FROM {} WHERE billing_account_id = %s").format(sql.Identifier(table))
                cur = await conn.execute(query, (account_id,))
                counts[table] = cur.rowcount
            cur = await conn.execute("DELETE FROM billing_accounts WHERE id = %s", (account_id,))
            counts["billing_accounts"] = cur.rowcount
        return counts
