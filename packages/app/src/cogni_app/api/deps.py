"""Request dependencies: the runtime, the account behind an API key, the operator check."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from cogni_app.api.errors import ApiError
from cogni_app.api.runtime import AppRuntime
from cogni_app.billing import ApiKeyPrincipal


def get_runtime(request: Request) -> AppRuntime:
    runtime: AppRuntime | None = getattr(request.app.state, "runtime", None)
    if runtime is None:
        raise ApiError(503, "not_ready", "the app is starting or stopping")
    return runtime


Runtime = Annotated[AppRuntime, Depends(get_runtime)]


def bearer_token(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiError(
            401, "unauthorized", "send 'Authorization: Bearer <api key>'", headers={"WWW-Authenticate": "Bearer"}
        )
    return token.strip()


async def get_principal(request: Request, runtime: Runtime) -> ApiKeyPrincipal:
    """The account an API key speaks for; an unknown or revoked key is 401 (UnknownApiKey, see errors.py)."""
    return await runtime.services.accounts.authenticate(bearer_token(request))


Principal = Annotated[ApiKeyPrincipal, Depends(get_principal)]


async def require_operator(request: Request, runtime: Runtime) -> None:
    """Operator routes: COGNI_ADMIN_TOKEN, compared as SHA-256 digests in constant time."""
    if runtime.settings.cogni_admin_token is None:
        raise ApiError(403, "admin_disabled", "operator routes are disabled: set COGNI_ADMIN_TOKEN")
    if not runtime.settings.admin_token_matches(bearer_token(request)):
        raise ApiError(403, "forbidden", "wrong operator token")


Operator = Depends(require_operator)
