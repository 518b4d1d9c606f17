"""LiteLLM's custom auth for per-account keys (`general_settings.custom_auth`, see `AUTH_FUNCTION`).

The app mints one LiteLLM key per billing account (`sk-cogni-<account, base64url>.<secret>`) and stores
only its SHA-256 in its table `llm_keys` (app migration 0004). This hook looks the presented key's hash up
there, read-only (its own DSN, `COGNI_LLM_KEYS_DATABASE_URL`, every lookup in a READ ONLY transaction, no
cache: a revocation is seen by the very next call), and answers LiteLLM's `UserAPIKeyAuth` with:

- `api_key` = the key's SHA-256 (what LiteLLM logs as `user_api_key_hash`; never the key),
- `key_alias` = `llm-key:<key id>`, `user_id` = the billing account,
- `rpm_limit` / `tpm_limit` from the row, which LiteLLM's rate limiter applies per key.

A key of ours that is unknown, revoked, or whose embedded account is not the row's is refused with
`401` (`ProxyException`, type `auth_error`). Any other key (the master key) is not ours to judge: the
hook raises a plain exception and, with `custom_auth_settings.mode: auto`, LiteLLM's own auth decides.

Imports nothing of ours beyond this package; psycopg only (the proxy's venv has it).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import logging
import os
from typing import Any

import psycopg
from psycopg.rows import dict_row

log = logging.getLogger("cogni_litellm_sink.keyauth")

KEY_PREFIX = "sk-cogni-"
KEYS_DATABASE_URL_ENV = "COGNI_LLM_KEYS_DATABASE_URL"
AUTH_FUNCTION = "cogni_litellm_sink.keyauth.user_api_key_auth"
LOOKUP_TIMEOUT = 5.0

LOOKUP_KEY = (
    "SELECT id, billing_account_id, rpm_limit, tpm_limit FROM llm_keys WHERE key_hash = %(hash)s AND revoked_at IS NULL"
)
"""The one statement the hook runs against the app's table (a contract with the app's migration 0004)."""


class NotOurKey(Exception):
    """The presented key is not a per-account key: LiteLLM's own auth (the master key) decides."""


def key_hash(plaintext: str) -> str:
    """SHA-256 hex: what the app stores and LiteLLM's `hash_token` computes for an `sk-` key."""
    return hashlib.sha256(plaintext.encode("utf-8")).hexdigest()


def key_account(plaintext: str) -> str | None:
    """The billing account a key names (`sk-cogni-<base64url account>.<secret>`); None when malformed."""
    if not plaintext.startswith(KEY_PREFIX):
        return None
    encoded, dot, secret = plaintext[len(KEY_PREFIX) :].partition(".")
    if not dot or not encoded or not secret:
        return None
    try:
        return base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode("utf-8") or None
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None


def key_alias(key_id: str) -> str:
    return f"llm-key:{key_id}"


class KeyLookup:
    """Looks keys up on a few reused connections (at most `max_idle` kept idle), each lookup in its own
    READ ONLY transaction; a connection that failed is dropped. No cache of answers: a revocation committed in
    the app is what the next lookup sees."""

    def __init__(self, database_url: str | None = None, *, max_idle: int = 4) -> None:
        self._explicit_url = database_url
        self._max_idle = max_idle
        self._idle: list[psycopg.AsyncConnection[dict[str, Any]]] = []
        self._pid = 0

    @property
    def database_url(self) -> str:
        url = self._explicit_url or os.environ.get(KEYS_DATABASE_URL_ENV)
        if not url:
            raise RuntimeError(f"{KEYS_DATABASE_URL_ENV} is not set: per-account keys cannot be checked")
        return url

    async def __call__(self, plaintext: str) -> dict[str, Any] | None:
        """The active key row for `plaintext` (id, account, limits), or None; bounded in time. A reused
        connection that died (the database restarted) is replaced once."""
        async with asyncio.timeout(LOOKUP_TIMEOUT):
            for attempt in (1, 2):
                reused = bool(self._idle)
                conn = await self._take()
                try:
                    async with conn.transaction():
                        await conn.execute("SET TRANSACTION READ ONLY")
                        cur = await conn.execute(LOOKUP_KEY, {"hash": key_hash(plaintext)})
                        row = await cur.fetchone()
                except psycopg.OperationalError:
                    await _close(conn)
                    if reused and attempt == 1:
                        continue
                    raise
                except BaseException:
                    await _close(conn)
                    raise
                await self._give_back(conn)
                return row
        return None  # not reached: the second attempt returns or raises

    async def _take(self) -> psycopg.AsyncConnection[dict[str, Any]]:
        if self._pid != os.getpid():  # connections never cross a fork
            self._idle.clear()
            self._pid = os.getpid()
        while self._idle:
            conn = self._idle.pop()
            if not conn.closed:
                return conn
        return await psycopg.AsyncConnection.connect(
            self.database_url, autocommit=True, connect_timeout=int(LOOKUP_TIMEOUT), row_factory=dict_row
        )

    async def _give_back(self, conn: psycopg.AsyncConnection[dict[str, Any]]) -> None:
        if len(self._idle) < self._max_idle and not conn.closed:
            self._idle.append(conn)
        else:
            await _close(conn)


async def _close(conn: psycopg.AsyncConnection[dict[str, Any]]) -> None:
    try:
        await conn.close()
    except Exception as exc:  # a broken connection may fail to close; it is dropped either way
        log.debug("llm key lookup: closing a connection failed: %s", exc)


lookup = KeyLookup()
"""The hook's lookup (the proxy's `COGNI_LLM_KEYS_DATABASE_URL`)."""


def _refuse(message: str) -> Exception:
    from litellm.proxy._types import ProxyErrorTypes, ProxyException

    return ProxyException(message=message, type=ProxyErrorTypes.auth_error, param="api_key", code=401)


async def user_api_key_auth(request: Any, api_key: str) -> Any:
    """LiteLLM's custom-auth hook (see the module doc)."""
    from litellm.proxy._types import UserAPIKeyAuth

    token = api_key[7:] if api_key[:7].lower() == "bearer " else api_key
    if not token.startswith(KEY_PREFIX):
        raise NotOurKey("not a per-account key; LiteLLM's own auth decides")
    account = key_account(token)
    if account is None:
        raise _refuse("malformed per-account LLM key")
    try:
        row = await lookup(token)
    except Exception as exc:  # the key table unreachable: refuse (never let an unchecked key through)
        log.error("llm key lookup failed: %s", exc)
        raise _refuse("per-account LLM keys cannot be checked right now") from None
    if row is None:
        raise _refuse("LLM key revoked or unknown")
    if str(row["billing_account_id"]) != account:
        raise _refuse("LLM key does not belong to the account it names")
    return UserAPIKeyAuth(
        api_key=key_hash(token),
        key_alias=key_alias(str(row["id"])),
        user_id=account,
        rpm_limit=row["rpm_limit"],
        tpm_limit=row["tpm_limit"],
    )
