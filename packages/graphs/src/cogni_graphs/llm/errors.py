"""Failures of an LLM call, shaped so `cogni_ai_core.normalize_error` maps them without knowing openai."""

from __future__ import annotations

import httpx2
import openai

from cogni_ai_core import AiExecutionErrorCode, LlmErrorKind, llm_error_kind

CALL_ID_HEADER = "x-litellm-call-id"
KEY_REJECTED: AiExecutionErrorCode = "llm_key_rejected"
KEY_REJECTED_STATUSES = (401, 403)


class LlmCallError(RuntimeError):
    """An LLM call that failed: `status_code` (408 for a client-side timeout) and LiteLLM's call id if sent.

    Nothing billable is emitted for a failed call: LiteLLM records it at cost 0 and the reconciler
    settles whatever it did record.
    """

    def __init__(self, message: str, *, status_code: int | None, call_id: str | None = None) -> None:
        if status_code in KEY_REJECTED_STATUSES:  # the code leads the message: it survives the server's error event
            message = f"{KEY_REJECTED}: {message}"
        super().__init__(message)
        self.status_code = status_code
        self.call_id = call_id
        self.code: AiExecutionErrorCode | None = KEY_REJECTED if status_code in KEY_REJECTED_STATUSES else None

    @property
    def kind(self) -> LlmErrorKind | None:
        """timeout / rate_limited / provider_4xx / provider_5xx, or None when no HTTP status is known."""
        return llm_error_kind(self.status_code) if self.status_code is not None else None


def _status_in_body(body: object) -> int | None:
    """LiteLLM's mid-stream error events carry the status as `code` ("429") in the error body."""
    code = body.get("code") if isinstance(body, dict) else None
    if isinstance(code, int):
        return code
    return int(code) if isinstance(code, str) and code.isdigit() else None


def from_openai_error(error: Exception, model: str) -> LlmCallError:
    """Translate the client's (or, mid-stream, the transport's) exception, keeping status and call id."""
    if isinstance(error, openai.APITimeoutError | httpx2.TimeoutException):
        return LlmCallError(f"LLM call to {model!r} timed out", status_code=408)
    if isinstance(error, openai.APIStatusError):
        call_id = error.response.headers.get(CALL_ID_HEADER)
        return LlmCallError(
            f"LLM call to {model!r} failed with HTTP {error.status_code}: {error.message}",
            status_code=error.status_code,
            call_id=call_id,
        )
    if isinstance(error, openai.APIConnectionError | httpx2.HTTPError):
        return LlmCallError(f"cannot reach LiteLLM for {model!r}: {error}", status_code=None)
    if isinstance(error, openai.APIError):
        status = _status_in_body(error.body)
        return LlmCallError(f"LLM call to {model!r} failed mid-stream: {error.message}", status_code=status)
    return LlmCallError(f"LLM call to {model!r} failed: {error}", status_code=None)
