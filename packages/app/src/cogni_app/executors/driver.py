"""Runs a provider's raw part stream through the shared translator and exposes stream + final."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import structlog

from cogni_ai_core import AI_EXECUTION_ERROR_CODES, AiEvent, AiExecutionError, normalize_error
from cogni_app.executors.metrics import RUNS_FINISHED
from cogni_app.executors.port import GraphFinal, GraphRunResult
from cogni_app.executors.translate import StreamTranslator

log = structlog.get_logger(__name__)

PartStream = AsyncIterator[tuple[str, Any]]
_STATUS_IN_MESSAGE = re.compile(r"(?:Error code|HTTP|status(?: code)?)[:= ]+(\d{3})", re.IGNORECASE)
_NAME_STATUS = {
    "RateLimitError": 429,
    "APITimeoutError": 408,
    "TimeoutError": 408,
    "ReadTimeout": 408,
    "GraphRecursionError": 400,
}


class RemoteRunError(Exception):
    """An `error` event of the server's stream, carrying what normalisation needs."""

    def __init__(self, error_type: str, message: str) -> None:
        super().__init__(f"{error_type}: {message}")
        self.error_type = error_type
        self.status_code: int | None = _NAME_STATUS.get(error_type)
        match = _STATUS_IN_MESSAGE.search(message)
        if self.status_code is None and match:
            self.status_code = int(match.group(1))
        if self.status_code is None and "timed out" in message:
            self.status_code = 408
        stripped = message.strip()
        leading = stripped.split(":", 1)[0]
        if error_type == "AiExecutionError" and stripped in AI_EXECUTION_ERROR_CODES:
            self.code: str | None = stripped
        elif error_type == "LlmCallError" and leading == "llm_key_rejected":  # cogni_graphs.llm.errors
            self.code = leading
        else:
            self.code = None

    @classmethod
    def from_payload(cls, data: Any) -> RemoteRunError:
        if isinstance(data, dict):
            return cls(str(data.get("error") or "Error"), str(data.get("message") or ""))
        return cls("Error", str(data))


def http_error_as_execution_error(exc: httpx.HTTPStatusError) -> BaseException:
    """Server HTTP statuses in our codes: 404 not_found, 400/422 invalid_request, the rest by status."""
    status = exc.response.status_code
    if status == 404:
        return AiExecutionError("not_found", f"agent server answered 404: {exc.response.text[:200]}")
    if status in (400, 409, 422):
        return AiExecutionError("invalid_request", f"agent server answered {status}: {exc.response.text[:200]}")
    return exc


def drive(
    parts: Callable[[], PartStream],
    translator: StreamTranslator,
    *,
    executor: str,
) -> GraphRunResult:
    """Wrap `parts()` so that every run ends with done, and errors become normalised error events."""
    final: asyncio.Future[GraphFinal] = asyncio.get_running_loop().create_future()

    def settle() -> None:
        if translator.final is None:
            translator.fail("aborted")
        if not final.done() and translator.final is not None:
            final.set_result(translator.final)
            RUNS_FINISHED.labels(executor=executor, outcome="ok" if translator.final.ok else "error").inc()

    async def stream() -> AsyncIterator[AiEvent]:
        ending: list[AiEvent]
        try:
            async for mode, data in parts():
                if mode.split("|", 1)[0] == "error":
                    raise RemoteRunError.from_payload(data)
                for event in translator.on_part(mode, data):
                    yield event
            ending = translator.finish()
        except (asyncio.CancelledError, GeneratorExit):
            settle()
            raise
        except Exception as exc:
            if isinstance(exc, httpx.HTTPStatusError):
                exc = http_error_as_execution_error(exc)  # type: ignore[assignment]
            code = normalize_error(exc)
            log.warning("graph_run_failed", executor=executor, code=code, error=repr(exc)[:500])
            ending = translator.fail(code)
        try:
            for event in ending:
                yield event
        finally:
            settle()

    return GraphRunResult(stream=stream(), final=final)
