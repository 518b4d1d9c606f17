"""cogni_ai_core: the shared contracts. Pure data and arithmetic; no I/O, imports nothing of ours."""

from cogni_ai_core.context import RunContext
from cogni_ai_core.errors import (
    AI_EXECUTION_ERROR_CODES,
    AiExecutionError,
    AiExecutionErrorCode,
    LlmErrorKind,
    llm_error_kind,
    normalize_error,
)
from cogni_ai_core.events import (
    UI_EVENT_TYPES,
    AiEvent,
    AssistantFinal,
    Done,
    ErrorEvent,
    TextDelta,
    ToolCallResult,
    ToolCallStart,
    UsageReport,
    is_ui_event,
    parse_ai_event,
)
from cogni_ai_core.graph_ids import DEFAULT_GRAPH_ID, GraphId, InvalidGraphId, parse_graph_id
from cogni_ai_core.identity import ExecutorType, SourceSystem
from cogni_ai_core.pricing import (
    CREDITS_PER_USD,
    DEFAULT_MARKUP_FACTOR,
    Charge,
    InvalidMarkup,
    price_usage,
    usd_to_credits,
    user_cost_usd,
    validate_markup,
)
from cogni_ai_core.run_config import GraphRunConfig
from cogni_ai_core.threads import (
    THREAD_NAMESPACE,
    InvalidStateKey,
    derive_thread_id,
    new_state_key,
    validate_state_key,
)
from cogni_ai_core.usage import (
    LLM_CALL_USAGE_TYPE,
    LlmCallUsage,
    UsageFact,
    charge_idempotency_key,
    is_llm_call_usage,
    source_reference,
)

__all__ = [
    "AI_EXECUTION_ERROR_CODES",
    "CREDITS_PER_USD",
    "DEFAULT_GRAPH_ID",
    "DEFAULT_MARKUP_FACTOR",
    "LLM_CALL_USAGE_TYPE",
    "THREAD_NAMESPACE",
    "UI_EVENT_TYPES",
    "AiEvent",
    "AiExecutionError",
    "AiExecutionErrorCode",
    "AssistantFinal",
    "Charge",
    "Done",
    "ErrorEvent",
    "ExecutorType",
    "GraphId",
    "GraphRunConfig",
    "InvalidGraphId",
    "InvalidMarkup",
    "InvalidStateKey",
    "LlmCallUsage",
    "LlmErrorKind",
    "RunContext",
    "SourceSystem",
    "TextDelta",
    "ToolCallResult",
    "ToolCallStart",
    "UsageFact",
    "UsageReport",
    "charge_idempotency_key",
    "derive_thread_id",
    "is_llm_call_usage",
    "is_ui_event",
    "llm_error_kind",
    "new_state_key",
    "normalize_error",
    "parse_ai_event",
    "parse_graph_id",
    "price_usage",
    "source_reference",
    "usd_to_credits",
    "user_cost_usd",
    "validate_markup",
    "validate_state_key",
]
