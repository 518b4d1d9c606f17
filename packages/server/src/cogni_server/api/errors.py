"""Every failure answers a JSON ``{"detail": "..."}`` a person can act on; domain errors map to
statuses here and nowhere else."""

from __future__ import annotations

import logging
import uuid
from typing import Any

import psycopg
from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from psycopg_pool import PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException

from cogni_server.api.responses import JSONResponse
from cogni_server.auth import AuthError
from cogni_server.errors import Conflict, DomainError, Forbidden, Invalid, NotFound, UpstreamFailed
from cogni_server.graphs import GraphNotFound
from cogni_server.serde import TOO_DEEP, UnstorableJson
from cogni_server.storage.purge import is_fence_error

log = logging.getLogger("cogni_server.api")


def _describe(error: dict[str, Any]) -> str:
    loc = [str(p) for p in error.get("loc", ()) if p != "body"]
    where = ".".join(loc)
    kind = error.get("type")
    if kind == "json_invalid":
        ctx = error.get("ctx") or {}
        return f"request body is not valid JSON: {ctx.get('error', error.get('msg'))}"
    if kind == "extra_forbidden":
        return f"unknown field {where!r}: this server does not accept it"
    if kind == "missing":
        return f"missing required field {where!r}"
    return f"{where}: {error.get('msg')}" if where else str(error.get("msg"))


# Domain error -> HTTP status, most specific first; the body is always {"detail": "<message>"}.
STATUS_OF: tuple[tuple[type[Exception], int], ...] = (
    (NotFound, 404),
    (GraphNotFound, 404),
    (Forbidden, 403),
    (Conflict, 409),
    (Invalid, 422),
    (UnstorableJson, 422),
    (UpstreamFailed, 502),
)


def status_of(exc: Exception) -> int:
    for kind, status in STATUS_OF:
        if isinstance(exc, kind):
            return status
    return 500


def install(app: FastAPI) -> None:
    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if isinstance(exc.__cause__, RecursionError):
            # the JSON parser gave up on nesting far past the limit (FastAPI answers a bare 400)
            return JSONResponse({"detail": TOO_DEEP}, status_code=422)
        return await http_exception_handler(request, exc)

    @app.exception_handler(RequestValidationError)
    async def validation(_: Request, exc: RequestValidationError) -> Response:
        messages = [_describe(e) for e in exc.errors()]
        return JSONResponse({"detail": "; ".join(messages)}, status_code=422)

    async def domain(_: Request, exc: Exception) -> Response:
        detail = f"graph not found: {exc}" if isinstance(exc, GraphNotFound) else str(exc)
        if isinstance(exc, UnstorableJson):
            detail = f"request body: {exc}"
        return JSONResponse({"detail": detail}, status_code=status_of(exc))

    for kind in (DomainError, GraphNotFound, UnstorableJson):
        app.add_exception_handler(kind, domain)

    @app.exception_handler(AuthError)
    async def auth_error(_: Request, exc: AuthError) -> Response:
        # custom auth handlers reject with their own status and message (403 for a plain False)
        return JSONResponse({"detail": exc.message}, status_code=exc.status_code)

    @app.exception_handler(psycopg.DataError)
    async def bad_data(_: Request, exc: psycopg.DataError) -> Response:
        # the database refused a value the client sent (NUL bytes in text, \u0000 in JSON, ...)
        diag = exc.diag
        what = " ".join(p for p in (diag.message_primary, diag.message_detail) if p) or str(exc)
        return JSONResponse({"detail": f"invalid value in the request: {what}"}, status_code=422)

    @app.exception_handler(psycopg.OperationalError)
    @app.exception_handler(PoolTimeout)
    async def database_unavailable(request: Request, exc: Exception) -> Response:
        # the database went away under this request (a restart, a failover): say so, retryable
        log.warning("database unavailable on %s %s: %s", request.method, request.url.path, exc)
        detail = "the database is unavailable right now (a restart or failover?); retry shortly"
        return JSONResponse({"detail": detail}, status_code=503, headers={"Retry-After": "1"})

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> Response:
        # The exception text may carry internals (hosts, SQL, secrets): it goes to the log under an
        # id, the client gets the id only.
        error_id = uuid.uuid4().hex[:16]
        log.error("unhandled error %s on %s %s", error_id, request.method, request.url.path, exc_info=exc)
        detail = f"internal server error (error id {error_id}; the server log has the details)"
        return JSONResponse({"detail": detail, "error_id": error_id}, status_code=500)

    @app.exception_handler(psycopg.ProgrammingError)
    async def programming_error(request: Request, exc: psycopg.ProgrammingError) -> Response:
        if is_fence_error(exc):  # the tenant's purge is in progress: its writes are refused
            detail = exc.diag.message_primary or "the tenant's data is being purged"
            return JSONResponse({"detail": detail}, status_code=409)
        return await unexpected(request, exc)
