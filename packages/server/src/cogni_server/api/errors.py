"""Every failure answers a JSON ``{"detail": "..."}`` a person can act on; domain errors map to
statuses here and nowhere else."""

from __future__ import annotations

import logging
from typing import Any

import psycopg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response

from cogni_server.api.responses import JSONResponse
from cogni_server.errors import Conflict, DomainError, Forbidden, Invalid, NotFound, UpstreamFailed
from cogni_server.graphs import GraphNotFound
from cogni_server.serde import UnstorableJson

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

    @app.exception_handler(psycopg.DataError)
    async def bad_data(_: Request, exc: psycopg.DataError) -> Response:
        # the database refused a value the client sent (NUL bytes in text, \u0000 in JSON, ...)
        diag = exc.diag
        what = " ".join(p for p in (diag.message_primary, diag.message_detail) if p) or str(exc)
        return JSONResponse({"detail": f"invalid value in the request: {what}"}, status_code=422)

    @app.exception_handler(Exception)
    async def unexpected(_: Request, exc: Exception) -> Response:
        log.exception("unhandled error")
        return JSONResponse({"detail": f"internal error: {type(exc).__name__}: {exc}"}, status_code=500)
