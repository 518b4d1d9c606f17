"""Pluggable caller authentication: ``none``, ``api_key`` (``x-api-key``) and service ``jwt``.

Every mode yields a Principal whose ``tenant`` owns the request's resources.
"""

from __future__ import annotations

from collections.abc import Mapping

from cogni_server.auth.api_key import API_KEY_HEADER, ApiKeyAuthenticator, parse_api_keys
from cogni_server.auth.jwt_auth import JwtAuthenticator
from cogni_server.auth.principal import DEFAULT_TENANT, Authenticator, AuthError, NoAuth, Principal

AUTH_MODES = ("none", "api_key", "jwt")


def build_authenticator(
    mode: str,
    *,
    api_keys: Mapping[str, str] | None = None,
    jwt_secret: str | None = None,
    jwt_public_key: str | None = None,
    jwt_algorithm: str = "HS256",
    jwt_audience: str | None = None,
    jwt_issuer: str | None = None,
) -> Authenticator:
    """The authenticator for ``mode``; a misconfiguration raises ValueError (a start-up error)."""
    normalized = mode.strip().lower().replace("-", "_")
    if normalized == "none":
        return NoAuth()
    if normalized == "api_key":
        if not api_keys:
            raise ValueError("auth mode 'api_key' needs at least one API key")
        return ApiKeyAuthenticator(api_keys)
    if normalized == "jwt":
        return JwtAuthenticator(
            algorithm=jwt_algorithm,
            secret=jwt_secret,
            public_key=jwt_public_key,
            audience=jwt_audience,
            issuer=jwt_issuer,
        )
    raise ValueError(f"unknown auth mode {mode!r}; expected one of {list(AUTH_MODES)}")


__all__ = [
    "API_KEY_HEADER",
    "AUTH_MODES",
    "DEFAULT_TENANT",
    "ApiKeyAuthenticator",
    "AuthError",
    "Authenticator",
    "JwtAuthenticator",
    "NoAuth",
    "Principal",
    "build_authenticator",
    "parse_api_keys",
]
