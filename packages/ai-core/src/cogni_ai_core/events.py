"""AiEvent: the one stream contract between executors, the relay, the UI and billing."""

from typing import Annotated, Any, Literal

from pydantic import Field, TypeAdapter

from cogni_ai_core.errors import AiExecutionErrorCode
from cogni_ai_core.usage import UsageFact
from cogni_ai_core.wire import WireModel

ToolCallId = Annotated[str, Field(min_length=1, max_length=128)]


class TextDelta(WireModel):
    type: Literal["text_delta"] = "text_delta"
    delta: str


class ToolCallStart(WireModel):
    """Emitted once the model's arguments parse; `tool_call_id` is the model's own id."""

    type: Literal["tool_call_start"] = "tool_call_start"
    tool_call_id: ToolCallId
    tool_name: str
    args: dict[str, Any]


class ToolCallResult(WireModel):
    type: Literal["tool_call_result"] = "tool_call_result"
    tool_call_id: ToolCallId
    result: dict[str, Any]
    is_error: bool | None = None


class UsageReport(WireModel):
    """Billing subscriber only: never forwarded to the UI."""

    type: Literal["usage_report"] = "usage_report"
    fact: UsageFact


class AssistantFinal(WireModel):
    """Exactly one on success: the whole assistant text."""

    type: Literal["assistant_final"] = "assistant_final"
    content: str


class ErrorEvent(WireModel):
    """Terminal failure; `done` follows."""

    type: Literal["error"] = "error"
    error: AiExecutionErrorCode


class Done(WireModel):
    type: Literal["done"] = "done"


AiEvent = Annotated[
    TextDelta | ToolCallStart | ToolCallResult | UsageReport | AssistantFinal | ErrorEvent | Done,
    Field(discriminator="type"),
]
_AI_EVENT = TypeAdapter(AiEvent)

UI_EVENT_TYPES = frozenset({"text_delta", "tool_call_start", "tool_call_result", "assistant_final", "error", "done"})
TERMINAL_EVENT_TYPES = frozenset({"done"})


def parse_ai_event(data: object) -> AiEvent:
    """Validate a wire dict (camelCase) into the right AiEvent."""
    return _AI_EVENT.validate_python(data)


def is_ui_event(event: AiEvent) -> bool:
    """Whether the UI stream may carry this event (everything but usage_report)."""
    return event.type in UI_EVENT_TYPES
