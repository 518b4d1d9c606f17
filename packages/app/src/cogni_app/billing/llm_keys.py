"""Per-account LiteLLM keys (docs/compliance.md, "Key lifecycle"): minted, rotated and revoked by the app, stored as
SHA-256 hashes in `llm_keys`, checked by LiteLLM's custom-auth hook (`cogni_litellm_sink.keyauth`) on every call.

A key is `sk-cogni-<account, base64url>.<secret>`: the account is readable (the Agent Server refuses a run
whose key names another tenant; the hook checks it against the row) and the secret is
HMAC-SHA256(COGNI_LLM_KEY_SECRET, key id and account). So the database holds no usable key (only hashes), yet
the app, which alone holds the secret, can hand the account's key to each run it starts. The operator sees a key
once, when it is minted or rotated.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg.errors import ForeignKeyViolation, UniqueViolation

from cogni_ai_core import LLM_KEY_PREFIX, compose_llm_key
from cogni_app.billing.errors import LlmKeyExists, LlmKeysUnavailable, RevokedLlmKey, UnknownAccount, UnknownLlmKeyId
from cogni_app.db import AppDatabase

SHOWN_PREFIX = len(LLM_KEY_PREFIX) + 7
"""How much of a key listings show (`sk-cogni-` and the start of the account part): tells keys apart, not secret."""

_COLUMNS = "id, billing_account_id, key_prefix, rpm_limit, tpm_limit, replaces, created_at, revoked_at"
ACCOUNT_EXISTS = "SELECT 1 FROM billing_accounts WHERE id = %(account)s"
LIST_KEYS = f"SELECT {_COLUMNS} FROM llm_keys WHERE billing_account_id = %(account)s ORDER BY created_at DESC, id"
GET_KEY = f"SELECT {_COLUMNS} FROM llm_keys WHERE id = %(key)s"
LOCK_KEY = "SELECT billing_account_id, rpm_limit, tpm_limit, revoked_at FROM llm_keys WHERE id = %(key)s FOR UPDATE"
INSERT_KEY = (
    "INSERT INTO llm_keys (id, billing_account_id, key_hash, key_prefix, rpm_limit, tpm_limit, replaces)"
    " VALUES (%(id)s, %(account)s, %(hash)s, %(prefix)s, %(rpm)s, %(tpm)s, %(replaces)s)"
)
REVOKE_KEY = "UPDATE llm_keys SET revoked_at = now() WHERE id = %(key)s AND revoked_at IS NULL"
ACTIVE_KEY = "SELECT id FROM llm_keys WHERE billing_account_id = %(account)s AND revoked_at IS NULL"
# the key a run of the account uses: its newest, revoked or not (LiteLLM then refuses a revoked one)
RUN_KEY = (
    "SELECT id, key_hash FROM llm_keys WHERE billing_account_id = %(account)s ORDER BY created_at DESC, id LIMIT 1"
)
AUTO_MINT = INSERT_KEY + " ON CONFLICT DO NOTHING"


@dataclass(frozen=True)
class LlmKeyRecord:
    """One key without its secret: what an operator may see."""

    id: str
    billing_account_id: str
    prefix: str
    rpm_limit: int | None
    tpm_limit: int | None
    replaces: str | None
    created_at: datetime
    revoked_at: datetime | None


def key_hash(plaintext: str) -> str:
    return hashlib.sha256(plaintext.encode("utf-8")).hexdigest()


class LlmKeyDeriver:
    """Computes a key's plaintext from its id and account with the app's secret (COGNI_LLM_KEY_SECRET)."""

    def __init__(self, secret: str) -> None:
        self._secret = secret.encode("utf-8")

    def plaintext(self, key_id: str, account_id: str) -> str:
        mac = hmac.new(self._secret, f"cogni-llm-key:{key_id}:{account_id}".encode(), hashlib.sha256).digest()
        return compose_llm_key(account_id, base64.urlsafe_b64encode(mac).decode("ascii").rstrip("="))


def _record(row: dict[str, Any]) -> LlmKeyRecord:
    return LlmKeyRecord(
        id=str(row["id"]),
        billing_account_id=str(row["billing_account_id"]),
        prefix=str(row["key_prefix"]),
        rpm_limit=row["rpm_limit"],
        tpm_limit=row["tpm_limit"],
        replaces=row["replaces"],
        created_at=row["created_at"],
        revoked_at=row["revoked_at"],
    )


class LlmKeys:
    """The `llm_keys` table. Without a deriver (no COGNI_LLM_KEY_SECRET) keys can be listed and revoked, not
    minted (LlmKeysUnavailable), and runs use the shared LITELLM_API_KEY."""

    def __init__(self, db: AppDatabase, deriver: LlmKeyDeriver | None) -> None:
        self.db = db
        self._deriver = deriver

    @property
    def enabled(self) -> bool:
        return self._deriver is not None

    def _derive(self) -> LlmKeyDeriver:
        if self._deriver is None:
            raise LlmKeysUnavailable("per-account LLM keys need COGNI_LLM_KEY_SECRET")
        return self._deriver

    def _new(
        self, account_id: str, rpm: int | None, tpm: int | None, replaces: str | None
    ) -> tuple[dict[str, Any], str]:
        key_id = str(uuid.uuid4())
        plaintext = self._derive().plaintext(key_id, account_id)
        params = {"id": key_id, "account": account_id, "hash": key_hash(plaintext),
                  "prefix": plaintext[:SHOWN_PREFIX], "rpm": rpm, "tpm": tpm, "replaces": replaces}  # fmt: skip
        return params, plaintext

    async def list_for_account(self, account_id: str) -> list[LlmKeyRecord]:
        async with self.db.pool.connection() as conn:
            cur = await conn.execute(ACCOUNT_EXISTS, {"account": account_id})
            if await cur.fetchone() is None:
                raise UnknownAccount(f"no billing account {account_id!r}")
            cur = await conn.execute(LIST_KEYS, {"account": account_id})
            return [_record(row) for row in await cur.fetchall()]

    async def get(self, key_id: str) -> LlmKeyRecord:
        async with self.db.pool.connection() as conn:
            cur = await conn.execute(GET_KEY, {"key": key_id})
            row = await cur.fetchone()
        if row is None:
            raise UnknownLlmKeyId(f"no LLM key {key_id!r}")
        return _record(row)

    async def mint(self, account_id: str, *, rpm_limit: int | None, tpm_limit: int | None) -> tuple[LlmKeyRecord, str]:
        """A new key for an account without an active one (LlmKeyExists otherwise: rotate that one)."""
        params, plaintext = self._new(account_id, rpm_limit, tpm_limit, None)
        async with self.db.pool.connection() as conn:
            try:
                await conn.execute(INSERT_KEY, params)
            except ForeignKeyViolation as exc:
                raise UnknownAccount(f"no billing account {account_id!r}") from exc
            except UniqueViolation:
                cur = await conn.execute(ACTIVE_KEY, {"account": account_id})
                active = await cur.fetchone()
                raise LlmKeyExists(
                    f"account {account_id!r} has an active LLM key {active['id'] if active else '?'!r}: rotate it"
                ) from None
        return await self.get(params["id"]), plaintext

    async def rotate(self, key_id: str) -> tuple[LlmKeyRecord, str]:
        """Revoke the key and mint its successor (same account and limits) in one transaction."""
        async with self.db.pool.connection() as conn, conn.transaction():
            cur = await conn.execute(LOCK_KEY, {"key": key_id})
            old = await cur.fetchone()
            if old is None:
                raise UnknownLlmKeyId(f"no LLM key {key_id!r}")
            if old["revoked_at"] is not None:
                raise RevokedLlmKey(f"LLM key {key_id!r} is revoked; mint a new key for the account instead")
            params, plaintext = self._new(str(old["billing_account_id"]), old["rpm_limit"], old["tpm_limit"], key_id)
            await conn.execute(REVOKE_KEY, {"key": key_id})
            await conn.execute(INSERT_KEY, params)
        return await self.get(params["id"]), plaintext

    async def revoke(self, key_id: str) -> LlmKeyRecord:
        """Revoked from LiteLLM's next call on (its hook reads the table on every call); idempotent."""
        async with self.db.pool.connection() as conn:
            await conn.execute(REVOKE_KEY, {"key": key_id})
        return await self.get(key_id)

    async def key_for_run(self, account_id: str) -> str | None:
        """The plaintext key a run of the account sends to LiteLLM (through the Agent Server): its newest key,
        minted on first use; None without COGNI_LLM_KEY_SECRET (the shared key is used)."""
        if self._deriver is None:
            return None
        async with self.db.pool.connection() as conn:
            cur = await conn.execute(RUN_KEY, {"account": account_id})
            row = await cur.fetchone()
            if row is None:
                params, _ = self._new(account_id, None, None, None)
                try:
                    await conn.execute(AUTO_MINT, params)
                except ForeignKeyViolation as exc:
                    raise UnknownAccount(f"no billing account {account_id!r}") from exc
                cur = await conn.execute(RUN_KEY, {"account": account_id})
                row = await cur.fetchone()
        assert row is not None  # inserted above, or by a concurrent first run
        plaintext = self._deriver.plaintext(str(row["id"]), account_id)
        if not hmac.compare_digest(key_hash(plaintext), str(row["key_hash"])):
            raise LlmKeysUnavailable(
                f"LLM key {row['id']!r} was minted with another COGNI_LLM_KEY_SECRET: rotate it (or restore the secret)"
            )
        return plaintext
