"""The LiteLLM callback: `litellm_settings: callbacks: cogni_litellm_sink.callback.spend_sink`.

Two writes per successful call, one row (same call id, upsert):

1. Before the client can see the call's cost, the proxy's post-call hooks commit the row
   (`prewrite.PreWriter`): a non-streaming response leaves the proxy only after it, and a stream's
   chunks from the first one carrying `usage` on are held back until it has committed. So a
   `kill -9` of the proxy can no longer leave a cost the client billed without a row.
2. LiteLLM's success/failure callback (which runs after the client has its answer) enqueues the
   complete row for the background writer (`writer.SpendLogWriter`); it also covers failures and
   calls whose client asked for no usage (no cost shown, nothing to bill from).

If the pre-write fails (the database is down or slow past its timeout), the call goes through
anyway and only the background writer's row remains (logged as an error): refusing every LLM call
while the sink's database is away would turn a bookkeeping outage into a product outage, and the
app's reconciler already treats a missing row like a late one. The gap this leaves needs a
database outage and a proxy crash together.

LiteLLM is imported only if present, so this package imports in the workspace venv (which has no
litellm) for tests of the mapping and the writer.
"""

from __future__ import annotations

import atexit
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from typing import Any

from cogni_litellm_sink.mapping import row_before_response, row_from_callback_kwargs, usage_of
from cogni_litellm_sink.prewrite import PreWriter
from cogni_litellm_sink.writer import SpendLogWriter

try:
    from litellm.integrations.custom_logger import CustomLogger as _LoggerBase
except ImportError:  # pragma: no cover - depends on the environment
    _LoggerBase = object

log = logging.getLogger("cogni_litellm_sink")


class SpendSink(_LoggerBase):
    """Turns every LiteLLM success/failure event into one queued spend-log row."""

    def __init__(self, writer: SpendLogWriter | None = None, prewriter: PreWriter | None = None) -> None:
        super().__init__()
        self.writer = writer or SpendLogWriter()
        self.prewriter = prewriter or PreWriter()

    async def prewrite(self, request_data: Mapping[str, Any], response: Any, usage: Any, cost: Any) -> bool:
        """Commit the call's row before its cost is shown; False (logged) when it could not be."""
        try:
            row = row_before_response(request_data, response, usage, cost)
        except Exception:
            log.exception("spend sink: could not map a response for its pre-write")
            return False
        return await self.prewriter.write(row)

    async def async_post_call_success_hook(self, data: dict[str, Any], user_api_key_dict: Any, response: Any) -> Any:
        """Non-streaming: runs before the proxy sends the response (and its cost header)."""
        usage = usage_of(response) if _is_model_response(response) else None
        if usage is not None:
            await self.prewrite(data, response, usage, _response_cost(data, response))
        return response

    async def async_post_call_streaming_iterator_hook(
        self, user_api_key_dict: Any, response: AsyncIterator[Any], request_data: dict[str, Any]
    ) -> AsyncGenerator[Any, None]:
        """Streaming: hold every chunk from the first one with `usage` on until the row is committed."""
        held: list[Any] = []
        usage_chunk: Any = None
        async for chunk in response:
            if usage_of(chunk) is not None:
                usage_chunk = chunk
            if usage_chunk is None:
                yield chunk
            else:
                held.append(chunk)
        if usage_chunk is not None:
            usage = usage_of(usage_chunk)
            await self.prewrite(request_data, usage_chunk, usage, _field(usage, "cost"))
        for chunk in held:
            yield chunk

    def record(self, kwargs: Mapping[str, Any], status: str) -> None:
        """Map and enqueue; never raises (a logging failure must not fail the user's call)."""
        try:
            self.writer.submit(row_from_callback_kwargs(kwargs, status=status))
        except Exception:
            log.exception("spend sink: could not record a %s event", status)

    async def async_log_success_event(self, kwargs: Any, response_obj: Any, start_time: Any, end_time: Any) -> None:
        self.record(kwargs, "success")

    async def async_log_failure_event(self, kwargs: Any, response_obj: Any, start_time: Any, end_time: Any) -> None:
        self.record(kwargs, "failure")

    def log_success_event(self, kwargs: Any, response_obj: Any, start_time: Any, end_time: Any) -> None:
        self.record(kwargs, "success")

    def log_failure_event(self, kwargs: Any, response_obj: Any, start_time: Any, end_time: Any) -> None:
        self.record(kwargs, "failure")


def _field(source: Any, name: str) -> Any:
    return source.get(name) if isinstance(source, Mapping) else getattr(source, name, None)


def _is_model_response(response: Any) -> bool:
    """A complete chat/text completion (not a stream wrapper, embedding or image response)."""
    try:
        from litellm import ModelResponse
    except ImportError:  # pragma: no cover - outside the proxy
        return False
    return isinstance(response, ModelResponse)


def _response_cost(data: Mapping[str, Any], response: Any) -> Any:
    """The cost the proxy puts in `x-litellm-response-cost`, found the way it finds it."""
    hidden = getattr(response, "_hidden_params", None) or {}
    cost = hidden.get("response_cost")
    if cost not in (None, ""):
        return cost
    logging_obj = data.get("litellm_logging_obj")
    if logging_obj is None:
        return None
    stored = logging_obj.model_call_details.get("response_cost")
    if isinstance(stored, int | float):
        return stored
    return logging_obj.response_cost_calculator(result=response)


spend_sink = SpendSink()
"""The instance named in LiteLLM's config."""

atexit.register(spend_sink.writer.close)
