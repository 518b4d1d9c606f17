"""Every failure answers a JSON ``{"detail": "..."}`` a person can act on."""

from __future__ import annotations

import logging
from typing import Any

import psycopg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response

from cogni_server.api.common import JSONResponse
from cogni_server.graphs import GraphNotFound
from cogni_server.serde import UnstorableJson
from cogni_server.storage.errors import Conflict, Forbidden, NotFound

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


def install(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def validation(_: Request, exc: RequestValidationError) -> Response:
        messages = [_describe(e) for e in exc.errors()]
        return JSONResponse({"detail": "; ".join(messages)}, status_code=422)

    @app.exception_handler(NotFound)
    async def not_found(_: Request, exc: NotFound) -> Response:
        return JSONResponse({"detail": str(exc)}, status_code=404)

    @app.exception_handler(GraphNotFound)
    async def graph_not_found(_: Request, exc: GraphNotFound) -> Response:
        return JSONResponse({"detail": f"graph not found: {exc}"}, status_code=404)

    @app.exception_handler(Conflict)
    async def conflict(_: Request, exc: Conflict) -> Response:
        return JSONResponse({"detail": str(exc)}, status_code=409)

    @app.exception_handler(Forbidden)
    async def forbidden(_: Request, exc: Forbidden) -> Response:
        return JSONResponse({"detail": str(exc)}, status_code=403)

    @app.exception_handler(UnstorableJson)
    async def unstorable(_: Request, exc: UnstorableJson) -> Response:
        return JSONResponse({"detail": f"request body: {exc}"}, status_code=422)

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
