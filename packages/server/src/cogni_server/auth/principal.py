"""Who is calling: the tenant every request acts for, and how it proved it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

DEFAULT_TENANT = "default"

AuthKind = Literal["none", "api_key", "jwt", "custom"]


@dataclass(frozen=True)
class Principal:
    """The authenticated caller; ``tenant`` owns every resource the request creates or sees."""

    tenant: str
    auth_kind: AuthKind
    user: Any = field(default=None, compare=False)  # custom auth: the handler's user (``auth.custom.AuthUser``)


class AuthError(Exception):
    """Missing or invalid credentials; the API answers ``status_code`` with ``message``."""

    def __init__(self, message: str, status_code: int = 401) -> None:
        super().__init__(message)
        self.message = message
        self.status_code = status_code


class Authenticator(Protocol):
    """Turns request headers into a Principal or raises AuthError."""

    def authenticate(self, headers: Mapping[str, str]) -> Principal: ...


def header(headers: Mapping[str, str], name: str) -> str | None:
    """Case-insensitive header lookup that works for Starlette Headers and plain dicts alike."""
    value = headers.get(name)
    if value is not None:
        return value
    lowered = name.lower()
    for key, val in headers.items():
        if key.lower() == lowered:
            return val
    return None


class NoAuth:
    """Development mode: every caller is the single default tenant."""

    _principal = Principal(DEFAULT_TENANT, "none")

    def authenticate(self, headers: Mapping[str, str]) -> Principal:
        return self._principal
