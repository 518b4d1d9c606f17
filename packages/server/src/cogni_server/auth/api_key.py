"""API key authentication: ``x-api-key`` header, each key mapped to a tenant."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping

from cogni_server.auth.principal import DEFAULT_TENANT, AuthError, Principal, header

API_KEY_HEADER = "x-api-key"


def parse_api_keys(spec: str) -> dict[str, str]:
    """``"key1:tenantA,key2:tenantB"`` -> {key: tenant}; a lone ``"key"`` maps to DEFAULT_TENANT.

    Keys may not contain ``,``; a key with ``:`` must name its tenant after the last ``:``.
    """
    keys: dict[str, str] = {}
    for raw in spec.split(","):
        item = raw.strip()
        if not item:
            continue
        key, sep, tenant = item.rpartition(":")
        if not sep:
            key, tenant = item, DEFAULT_TENANT
        key, tenant = key.strip(), tenant.strip()
        if not key or not tenant:
            raise ValueError(f"invalid API key entry {item!r}: expected 'key' or 'key:tenant'")
        keys[key] = tenant
    if not keys:
        raise ValueError("API key auth needs at least one key")
    return keys


class ApiKeyAuthenticator:
    """Compares SHA-256 digests in constant time, so timing reveals neither key nor length."""

    def __init__(self, api_keys: Mapping[str, str]) -> None:
        if not api_keys:
            raise ValueError("API key auth needs at least one key")
        self._keys = [(hashlib.sha256(k.encode()).digest(), tenant) for k, tenant in api_keys.items()]

    def authenticate(self, headers: Mapping[str, str]) -> Principal:
        presented = header(headers, API_KEY_HEADER)
        if not presented:
            raise AuthError(f"missing API key: send it in the '{API_KEY_HEADER}' header")
        digest = hashlib.sha256(presented.encode()).digest()
        tenant: str | None = None
        for known, owner in self._keys:  # check every key: no early exit
            if hmac.compare_digest(digest, known):
                tenant = owner
        if tenant is None:
            raise AuthError("invalid API key")
        return Principal(tenant, "api_key")
