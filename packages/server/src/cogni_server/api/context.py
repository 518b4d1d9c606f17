"""How a route reaches the process's services context and the caller's identity."""

from __future__ import annotations

from fastapi import HTTPException, Request

from cogni_server.auth import AuthError, Principal
from cogni_server.services.context import ServerContext


def context(request: Request) -> ServerContext:  # plain function: called directly, never as a dependency
    ctx: ServerContext = request.app.state.cogni
    return ctx


async def principal(request: Request) -> Principal:
    """FastAPI dependency: authenticate the caller; its tenant scopes every query.

    Async on purpose: FastAPI runs sync dependencies in a thread pool, a cost paid on every request.
    """
    ctx: ServerContext = request.app.state.cogni
    try:
        return ctx.authenticator.authenticate(request.headers)
    except AuthError as exc:
        raise HTTPException(status_code=exc.status_code, detail=exc.message) from exc
