"""How a route reaches the process's services context and the caller's identity."""

from __future__ import annotations

from typing import Any

from fastapi import HTTPException, Request
from starlette.requests import HTTPConnection

from cogni_server.auth import AuthError, Principal
from cogni_server.auth.custom import CustomAuthenticator, current_user
from cogni_server.services.context import ServerContext


def context(request: Request) -> ServerContext:  # plain function: called directly, never as a dependency
    ctx: ServerContext = request.app.state.cogni
    return ctx


def handler_arguments(conn: HTTPConnection, headers: dict[str, str] | None = None) -> dict[str, Any]:
    """What a custom ``@auth.authenticate`` handler may ask for, by name (the reference's set)."""
    raw = (
        [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
        if headers is not None
        else list(conn.scope.get("headers") or [])
    )
    as_bytes = dict(raw)
    authorization = as_bytes.get(b"authorization")
    return {
        "request": conn,
        "scope": conn.scope,
        "path": conn.url.path,
        "method": conn.scope.get("method", "GET") if conn.scope["type"] == "http" else "GET",
        "path_params": dict(conn.path_params),
        "query_params": dict(conn.query_params),
        "headers": as_bytes,
        "authorization": authorization.decode("latin-1") if authorization is not None else None,
        "scopes": list(conn.scope.get("auth_scopes") or []),
    }


async def authenticate(conn: HTTPConnection, headers: dict[str, str] | None = None) -> Principal:
    """The caller of an HTTP request or WebSocket (``headers`` overrides the connection's, e.g. cookie
    credentials); raises AuthError. A custom auth user is remembered for the runs the request creates."""
    ctx: ServerContext = conn.app.state.cogni
    authenticator = ctx.authenticator
    if isinstance(authenticator, CustomAuthenticator):
        who = await authenticator.authenticate_request(handler_arguments(conn, headers))
        current_user.set(who.user)
        return who
    return authenticator.authenticate(conn.headers if headers is None else headers)


async def principal(request: Request) -> Principal:
    """FastAPI dependency: authenticate the caller; its tenant scopes every query.

    Async on purpose: FastAPI runs sync dependencies in a thread pool, a cost paid on every request
    (and a custom auth user set here must stay visible to the route).
    """
    try:
        return await authenticate(request)
    except AuthError as exc:
        raise HTTPException(status_code=exc.status_code, detail=exc.message) from exc
