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


async def lookup(plaintext: str, database_url: str | None = None) -> dict[str, Any] | None:
    """The active key row for `plaintext` (id, account, limits), or None; read-only, bounded in time."""
    url = database_url or os.environ.get(KEYS_DATABASE_URL_ENV)
    if not url:
        raise RuntimeError(f"{KEYS_DATABASE_URL_ENV} is not set: per-account keys cannot be checked")
    async with asyncio.timeout(LOOKUP_TIMEOUT):
        conn = await psycopg.AsyncConnection.connect(url, connect_timeout=int(LOOKUP_TIMEOUT), row_factory=dict_row)
        try:
            async with conn.transaction():
                await conn.execute("SET TRANSACTION READ ONLY")
                cur = await conn.execute(LOOKUP_KEY, {"hash": key_hash(plaintext)})
                return await cur.fetchone()
        finally:
            await conn.close()


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
