"""API keys as an operator sees them: listed without secrets, revoked, rotated in place.

The database holds a key's SHA-256 hash and its first characters (the prefix shown in listings), never the
key. A key is authenticated by looking its hash up on every request (`Accounts.resolve_api_key`, no cache),
so a revocation or a rotation committed here is what the very next request sees.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cogni_app.billing.accounts import API_KEY_PREFIX, hash_api_key
from cogni_app.billing.errors import RevokedApiKey, UnknownAccount, UnknownApiKeyId
from cogni_app.db import AppDatabase

PREFIX_LENGTH = len(API_KEY_PREFIX) + 4
"""How much of a key is kept in clear to tell keys apart in listings (`cogni_` and 4 random characters)."""

# never key_hash: a listing shows neither the key nor its hash
_COLUMNS = "k.id, k.key_prefix, k.billing_account_id, k.virtual_key_id, v.label, k.created_at, k.revoked_at"
_FROM = "FROM api_keys k JOIN virtual_keys v ON v.id = k.virtual_key_id AND v.billing_account_id = k.billing_account_id"

ACCOUNT_EXISTS = "SELECT 1 FROM billing_accounts WHERE id = %(account)s"
LIST_ACCOUNT_KEYS = (
    f"SELECT {_COLUMNS} {_FROM} WHERE k.billing_account_id = %(account)s ORDER BY k.created_at DESC, k.id"
)
GET_KEY = f"SELECT {_COLUMNS} {_FROM} WHERE k.id = %(key)s"
# a key revoked already keeps its first revocation time
REVOKE_KEY = "UPDATE api_keys SET revoked_at = now() WHERE id = %(key)s AND revoked_at IS NULL RETURNING id"
ROTATE_KEY = (
    "UPDATE api_keys SET key_hash = %(hash)s, key_prefix = %(prefix)s"
    " WHERE id = %(key)s AND revoked_at IS NULL RETURNING id"
)  # one statement: the old hash is gone in the same commit that stores the new one


@dataclass(frozen=True)
class ApiKeyRecord:
    """One API key without its secret: what an operator may see."""

    id: str
    prefix: str
    billing_account_id: str
    virtual_key_id: str
    label: str
    created_at: datetime
    revoked_at: datetime | None


def mint_api_key() -> tuple[str, str, str]:
    """A new key's (plaintext, SHA-256 hash, prefix); the plaintext must be shown once and then dropped."""
    plaintext = API_KEY_PREFIX + secrets.token_urlsafe(32)
    return plaintext, hash_api_key(plaintext), plaintext[:PREFIX_LENGTH]


def _record(row: dict[str, Any]) -> ApiKeyRecord:
    return ApiKeyRecord(
        id=str(row["id"]),
        prefix=str(row["key_prefix"]),
        billing_account_id=str(row["billing_account_id"]),
        virtual_key_id=str(row["virtual_key_id"]),
        label=str(row["label"]),
        created_at=row["created_at"],
        revoked_at=row["revoked_at"],
    )


class ApiKeys:
    """Listing, revocation and rotation of API keys by key id. Unknown ids raise UnknownApiKeyId."""

    def __init__(self, db: AppDatabase) -> None:
        self.db = db

    async def list_for_account(self, account_id: str) -> list[ApiKeyRecord]:
        """Every key of the account, revoked ones included, newest first; UnknownAccount if there is none."""
        async with self.db.pool.connection() as conn:
            cur = await conn.execute(ACCOUNT_EXISTS, {"account": account_id})
            if await cur.fetchone() is None:
                raise UnknownAccount(f"no billing account {account_id!r}")
            cur = await conn.execute(LIST_ACCOUNT_KEYS, {"account": account_id})
            rows = await cur.fetchall()
        return [_record(row) for row in rows]

    async def get(self, key_id: str) -> ApiKeyRecord:
        async with self.db.pool.connection() as conn:
            cur = await conn.execute(GET_KEY, {"key": key_id})
            row = await cur.fetchone()
        if row is None:
            raise UnknownApiKeyId(f"no API key {key_id!r}")
        return _record(row)

    async def revoke(self, key_id: str) -> ApiKeyRecord:
        """Revoke the key (idempotent: a revoked key stays revoked, with its first revocation time)."""
        async with self.db.pool.connection() as conn:
            await conn.execute(REVOKE_KEY, {"key": key_id})
        return await self.get(key_id)

    async def rotate(self, key_id: str) -> tuple[ApiKeyRecord, str]:
        """A new secret for the same key id (same account, virtual key and label); the old secret stops
        working in the same commit. Returns the record and the new plaintext. RevokedApiKey for a revoked key:
        rotating must not bring a revoked key back."""
        plaintext, key_hash, prefix = mint_api_key()
        async with self.db.pool.connection() as conn:
            cur = await conn.execute(ROTATE_KEY, {"key": key_id, "hash": key_hash, "prefix": prefix})
            rotated = await cur.fetchone() is not None
        record = await self.get(key_id)  # UnknownApiKeyId when there is no such key at all
        if not rotated:
            raise RevokedApiKey(f"API key {key_id!r} is revoked; issue a new key instead")
        return record, plaintext
