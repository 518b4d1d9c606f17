"""What LiteLLM reports about one call: its call id, model group and cost, read from headers and usage.

Non-streaming calls carry the cost in the `x-litellm-response-cost` header. Streaming calls send
cost 0 in the headers (the cost is unknown when they go out) and the real cost in the final
chunk's `usage.cost` (only with `stream_options.include_usage`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from langchain_core.messages.ai import UsageMetadata

from cogni_ai_core import LlmCallUsage
from cogni_graphs.llm.errors import CALL_ID_HEADER

MODEL_GROUP_HEADER = "x-litellm-model-group"
RESPONSE_COST_HEADER = "x-litellm-response-cost"

log = logging.getLogger(__name__)


def parse_cost(value: object) -> Decimal | None:
    """A non-negative Decimal from a header string or a JSON number; None when absent or malformed."""
    if value is None or isinstance(value, bool):
        return None
    try:
        cost = Decimal(str(value).strip())
    except (InvalidOperation, ValueError):
        log.warning("unparseable LiteLLM cost %r", value)
        return None
    if not cost.is_finite() or cost < 0:
        log.warning("invalid LiteLLM cost %r", value)
        return None
    return cost


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def usage_fields(usage: Any) -> dict[str, Any]:
    """Token counts (and LiteLLM's `cost`, if present) of an OpenAI `usage` object or dict."""
    if usage is None:
        return {}
    data: Mapping[str, Any] = usage if isinstance(usage, Mapping) else usage.model_dump()
    details = data.get("prompt_tokens_details") or {}
    return {
        "input_tokens": _int(data.get("prompt_tokens")),
        "output_tokens": _int(data.get("completion_tokens")),
        "cache_read_tokens": _int(details.get("cached_tokens")) if isinstance(details, Mapping) else None,
        "cost": data.get("cost"),
    }


def usage_metadata(fields: Mapping[str, Any]) -> UsageMetadata | None:
    """LangChain's token usage for the AIMessage, when the upstream reported tokens."""
    inp, out = fields.get("input_tokens"), fields.get("output_tokens")
    if inp is None and out is None:
        return None
    return UsageMetadata(input_tokens=inp or 0, output_tokens=out or 0, total_tokens=(inp or 0) + (out or 0))


def build_call_usage(
    *,
    headers: Mapping[str, str],
    fields: Mapping[str, Any],
    cost: Decimal | None,
    model: str,
    node: str | None,
    provider_response_id: str | None,
    attempt: int | None = None,
) -> LlmCallUsage | None:
    """The usage event of one successful call, or None when LiteLLM did not identify the call.

    Without `x-litellm-call-id` (e.g. pointed straight at a provider, not at LiteLLM) there is no
    usage unit id, so nothing can be billed exactly once; we say so in the log and emit nothing.
    """
    call_id = headers.get(CALL_ID_HEADER)
    if not call_id:
        log.warning("LLM response for model %r carries no %s header: no usage event emitted", model, CALL_ID_HEADER)
        return None
    return LlmCallUsage(
        call_id=call_id,
        model=model,
        model_group=headers.get(MODEL_GROUP_HEADER) or None,
        input_tokens=fields.get("input_tokens"),
        output_tokens=fields.get("output_tokens"),
        cache_read_tokens=fields.get("cache_read_tokens"),
        cost_usd=cost,
        node=node,
        provider_response_id=provider_response_id,
        attempt=attempt,
    )
