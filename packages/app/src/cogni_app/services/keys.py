"""The operator's key management (docs/compliance.md, "Key lifecycle"): list an account's API keys without
their secrets, revoke one, rotate one. Each change is logged (key id and account, never the key) so that who
changed which key when can be traced in the app's logs."""

from __future__ import annotations

from dataclasses import dataclass

import structlog

from cogni_app.billing import ApiKeyRecord, ApiKeys

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class RotatedKey:
    """A rotated key: the same record (id, label, account) and its new plaintext, which exists only here."""

    key: ApiKeyRecord
    api_key: str


class KeyService:
    """Raises UnknownAccount (listing an account that does not exist), UnknownApiKeyId (no such key id) and
    RevokedApiKey (rotating a revoked key)."""

    def __init__(self, keys: ApiKeys) -> None:
        self._keys = keys

    async def list_keys(self, account_id: str) -> list[ApiKeyRecord]:
        return await self._keys.list_for_account(account_id)

    async def revoke(self, key_id: str) -> ApiKeyRecord:
        """Refused from the next request on: keys are looked up in the database on every request."""
        key = await self._keys.revoke(key_id)
        log.info("api_key_revoked", key_id=key.id, billing_account_id=key.billing_account_id)
        return key

    async def rotate(self, key_id: str) -> RotatedKey:
        """A new secret for the key; the old one is refused from the next request on."""
        key, plaintext = await self._keys.rotate(key_id)
        log.info("api_key_rotated", key_id=key.id, billing_account_id=key.billing_account_id, prefix=key.prefix)
        return RotatedKey(key=key, api_key=plaintext)
