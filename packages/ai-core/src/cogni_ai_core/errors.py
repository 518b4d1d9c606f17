"""Error codes of the AiEvent stream and the normalisation every executor applies to failures."""

import asyncio
from enum import StrEnum
from typing import Literal, get_args

AiExecutionErrorCode = Literal[
    "invalid_request",
    "not_found",
    "timeout",
    "aborted",
    "rate_limit",
    "internal",
    "insufficient_credits",
    "llm_key_rejected",
]
"""`llm_key_rejected`: LiteLLM refused the run's per-account key (revoked, unknown, not the account's)."""
AI_EXECUTION_ERROR_CODES: frozenset[str] = frozenset(get_args(AiExecutionErrorCode))


class LlmErrorKind(StrEnum):
    """What an LLM HTTP status means for retry and reporting."""

    TIMEOUT = "timeout"
    RATE_LIMITED = "rate_limited"
    PROVIDER_4XX = "provider_4xx"
    PROVIDER_5XX = "provider_5xx"


def llm_error_kind(status: int) -> LlmErrorKind:
    """408 timeout, 429 rate limited, other 4xx provider_4xx, everything else provider_5xx."""
    if status == 408:
        return LlmErrorKind.TIMEOUT
    if status == 429:
        return LlmErrorKind.RATE_LIMITED
    if 400 <= status < 500:
        return LlmErrorKind.PROVIDER_4XX
    return LlmErrorKind.PROVIDER_5XX


class AiExecutionError(Exception):
    """An error that already knows its code; normalisation keeps that code."""

    def __init__(self, code: AiExecutionErrorCode, message: str = "") -> None:
        super().__init__(message or code)
        self.code: AiExecutionErrorCode = code


def _status_of(error: BaseException) -> int | None:
    for attr in ("status_code", "status", "http_status"):
        value = getattr(error, attr, None)
        if isinstance(value, int):
            return value
    response = getattr(error, "response", None)
    value = getattr(response, "status_code", None)
    return value if isinstance(value, int) else None


def normalize_error(error: BaseException | None, *, cancelled: bool = False) -> AiExecutionErrorCode:
    """Map any failure to a stream error code.

    Order (from the contract): cancellation -> aborted; an error carrying a valid code -> that
    code; LLM status 429 -> rate_limit, 408 -> timeout; anything else -> internal.
    """
    if cancelled or isinstance(error, asyncio.CancelledError):
        return "aborted"
    if error is None:
        return "internal"
    code = getattr(error, "code", None)
    if isinstance(code, str) and code in AI_EXECUTION_ERROR_CODES:
        return code  # type: ignore[return-value]
    status = _status_of(error)
    if status == 429:
        return "rate_limit"
    if status == 408 or isinstance(error, TimeoutError):
        return "timeout"
    return "internal"
