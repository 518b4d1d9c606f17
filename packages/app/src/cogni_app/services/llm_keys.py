"""The operator's per-account LiteLLM keys (docs/compliance.md, "Key lifecycle"): list without secrets, mint,
rotate, revoke. Each change is logged with the key id and account, never the key."""

from __future__ import annotations

from dataclasses import dataclass

import structlog

from cogni_app.billing import LlmKeyRecord, LlmKeys

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class IssuedLlmKey:
    """A minted or rotated key: its record and its plaintext, which exists only in this answer."""

    key: LlmKeyRecord
    llm_key: str


class LlmKeyService:
    """Raises UnknownAccount, UnknownLlmKeyId, RevokedLlmKey (rotating a revoked key), LlmKeyExists (minting
    beside an active key) and LlmKeysUnavailable (no COGNI_LLM_KEY_SECRET)."""

    def __init__(self, keys: LlmKeys) -> None:
        self._keys = keys

    async def list_keys(self, account_id: str) -> list[LlmKeyRecord]:
        return await self._keys.list_for_account(account_id)

    async def mint(
        self, account_id: str, *, rpm_limit: int | None = None, tpm_limit: int | None = None
    ) -> IssuedLlmKey:
        key, plaintext = await self._keys.mint(account_id, rpm_limit=rpm_limit, tpm_limit=tpm_limit)
        log.info("llm_key_minted", key_id=key.id, billing_account_id=key.billing_account_id, prefix=key.prefix)
        return IssuedLlmKey(key=key, llm_key=plaintext)

    async def rotate(self, key_id: str) -> IssuedLlmKey:
        """The key is revoked and replaced by a new one (same account and limits) at once."""
        key, plaintext = await self._keys.rotate(key_id)
        log.info("llm_key_rotated", key_id=key.id, replaces=key_id, billing_account_id=key.billing_account_id)
        return IssuedLlmKey(key=key, llm_key=plaintext)

    async def revoke(self, key_id: str) -> LlmKeyRecord:
        """LiteLLM refuses the key from its next call on; the account's runs fail until a new key is minted."""
        key = await self._keys.revoke(key_id)
        log.info("llm_key_revoked", key_id=key.id, billing_account_id=key.billing_account_id)
        return key
