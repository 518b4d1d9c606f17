"""One error body for every 4xx/5xx (`{"error": code, "message": ...}`) and the validation mapping.

Unknown request fields answer 422 naming the field; every other validation failure answers 400.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from cogni_ai_core import AiExecutionErrorCode

# How a run that failed before its first output is answered (after that, failures are events).
STATUS_OF_CODE: dict[AiExecutionErrorCode, int] = {
    "invalid_request": 400,
    "insufficient_credits": 402,
    "not_found": 404,
    "timeout": 408,
    "rate_limit": 429,
    "internal": 503,
    "aborted": 503,
}


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.extra = extra


def _field(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    return ".".join(parts) or "body"


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        headers = exc.extra.pop("headers", None)
        return JSONResponse(
            {"error": exc.code, "message": exc.message, **exc.extra}, status_code=exc.status, headers=headers
        )

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        extra = [e for e in errors if e.get("type") == "extra_forbidden"]
        if extra:
            names = ", ".join(_field(tuple(e.get("loc", ()))) for e in extra)
            return JSONResponse(
                {"error": "unsupported_field", "message": f"unsupported field(s): {names}"}, status_code=422
            )
        details = [{"field": _field(tuple(e.get("loc", ()))), "message": str(e.get("msg"))} for e in errors]
        summary = "; ".join(f"{d['field']}: {d['message']}" for d in details)
        return JSONResponse({"error": "invalid_request", "message": summary, "details": details}, status_code=400)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse({"error": "http_error", "message": str(exc.detail)}, status_code=exc.status_code)
