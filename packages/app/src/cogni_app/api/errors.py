"""Every error body the API sends (`{"error": code, "message": ..., **extra}`), mapped in this one place:
the use cases' domain errors, request validation, and Starlette's own HTTP errors.

Unknown request fields answer 422 naming the field; every other validation failure answers 400.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from cogni_ai_core import AiExecutionErrorCode
from cogni_app.api.encode import agent_body, run_headers
from cogni_app.billing import (
    InsufficientCredits,
    InvalidGrant,
    LlmKeyExists,
    LlmKeysUnavailable,
    RevokedApiKey,
    RevokedLlmKey,
    UnknownAccount,
    UnknownApiKey,
    UnknownApiKeyId,
    UnknownLlmKeyId,
)
from cogni_app.models import UnknownModel
from cogni_app.services import AgentsUnavailable, DeletionUnavailable, GraphNotFound, RunFailedEarly, UnknownDeletion

# How a run that failed before its first output is answered (after that, failures are events).
STATUS_OF_CODE: dict[AiExecutionErrorCode, int] = {
    "invalid_request": 400,
    "insufficient_credits": 402,
    "not_found": 404,
    "timeout": 408,
    "rate_limit": 429,
    "llm_key_rejected": 403,
    "internal": 503,
    "aborted": 503,
}


class ApiError(Exception):
    """An HTTP answer decided in the API layer itself (authentication, readiness); `extra` joins the body."""

    def __init__(
        self, status: int, code: str, message: str, *, headers: dict[str, str] | None = None, **extra: Any
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers
        self.extra = extra


DOMAIN_ERRORS: tuple[type[Exception], ...] = (
    UnknownModel,
    InsufficientCredits,
    GraphNotFound,
    RunFailedEarly,
    UnknownAccount,  # UnknownApiKey is one
    InvalidGrant,
    AgentsUnavailable,
    DeletionUnavailable,
    UnknownDeletion,
    UnknownApiKeyId,
    RevokedApiKey,
    UnknownLlmKeyId,
    RevokedLlmKey,
    LlmKeyExists,
    LlmKeysUnavailable,
)


def api_error(exc: Exception) -> ApiError:
    """The status and body of a domain error (one of DOMAIN_ERRORS)."""
    if isinstance(exc, UnknownModel):
        return ApiError(409, "unknown_model", str(exc), defaultModelId=exc.default_model_id)
    if isinstance(exc, InsufficientCredits):
        return ApiError(
            402,
            "insufficient_credits",
            f"this request needs about {exc.required} credits; the balance is {exc.balance}",
            requiredCredits=exc.required,
            balanceCredits=exc.balance,
        )
    if isinstance(exc, GraphNotFound):
        return ApiError(404, "not_found", str(exc), headers=run_headers(exc.ids))
    if isinstance(exc, RunFailedEarly):
        return ApiError(STATUS_OF_CODE[exc.code], exc.code, str(exc), headers=run_headers(exc.ids))
    if isinstance(exc, UnknownApiKey):  # RFC 6750: a revoked or unknown bearer token is 401 invalid_token
        return ApiError(
            401,
            "unauthorized",
            "unknown or revoked API key",
            headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
        )
    if isinstance(exc, UnknownAccount):
        return ApiError(404, "not_found", str(exc))
    if isinstance(exc, InvalidGrant):
        return ApiError(400, "invalid_request", str(exc))
    if isinstance(exc, AgentsUnavailable):
        unavailable = [{"namespace": f.route, "provider": f.provider, "reason": f.reason} for f in exc.failures]
        return ApiError(
            503, "agents_unavailable", str(exc), unavailable=unavailable, agents=[agent_body(a) for a in exc.agents]
        )
    if isinstance(exc, DeletionUnavailable):
        return ApiError(503, "deletion_unavailable", str(exc))
    if isinstance(exc, UnknownDeletion | UnknownApiKeyId | UnknownLlmKeyId):
        return ApiError(404, "not_found", str(exc))
    if isinstance(exc, RevokedApiKey | RevokedLlmKey):
        return ApiError(409, "key_revoked", str(exc))
    if isinstance(exc, LlmKeyExists):
        return ApiError(409, "llm_key_exists", str(exc))
    if isinstance(exc, LlmKeysUnavailable):
        return ApiError(503, "llm_keys_unavailable", str(exc))
    raise TypeError(f"{type(exc).__name__} is not a domain error the API maps") from exc


def _response(error: ApiError) -> JSONResponse:
    body = {"error": error.code, "message": error.message, **error.extra}
    return JSONResponse(body, status_code=error.status, headers=error.headers)


def _field(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    return ".".join(parts) or "body"


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return _response(exc)

    async def _domain_error(_: Request, exc: Exception) -> JSONResponse:
        return _response(api_error(exc))

    for kind in DOMAIN_ERRORS:
        app.add_exception_handler(kind, _domain_error)

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
