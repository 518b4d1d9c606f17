"""One translator from LangGraph stream parts to AiEvents, shared by every provider.

Both providers feed it the same JSON shapes (the in-process provider first turns LangGraph's
objects into the dicts the server would send), so the AiEvent sequence is the same by construction.
Input parts are `(mode, data)`: `messages` ([message, metadata]), `updates`, `custom`, `metadata`, `error`.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import structlog
from pydantic import ValidationError

from cogni_ai_core import (
    AiEvent,
    AiExecutionErrorCode,
    AssistantFinal,
    Done,
    ErrorEvent,
    ExecutorType,
    LlmCallUsage,
    SourceSystem,
    TextDelta,
    ToolCallResult,
    UsageReport,
    is_llm_call_usage,
)
from cogni_app.executors.metrics import USAGE_EVENTS_REJECTED
from cogni_app.executors.port import GraphFinal, GraphRunRequest, ToolCallRecord, UsageTotals
from cogni_app.executors.tool_calls import ToolCallAssembler

log = structlog.get_logger(__name__)

_AI_TYPES = frozenset({"ai", "AIMessageChunk", "AIMessage"})
_TOOL_TYPES = frozenset({"tool", "ToolMessage", "ToolMessageChunk"})


def message_text(content: object) -> str:
    """Text of a message `content`: a string, or the text blocks of a content list."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for block in content:
            if isinstance(block, str):
                parts.append(block)
            elif isinstance(block, dict) and block.get("type") == "text":
                parts.append(str(block.get("text", "")))
        return "".join(parts)
    return ""


def tool_result_payload(content: object) -> dict[str, Any]:
    """A ToolMessage's content as a dict: JSON objects pass through, anything else is wrapped."""
    if isinstance(content, dict):
        return content
    text = message_text(content) if not isinstance(content, str) else content
    try:
        value = json.loads(text)
    except ValueError:
        return {"content": text}
    return value if isinstance(value, dict) else {"content": value}


def attempt_of(server_attempt: Any, default: int) -> int:
    """Our 0-based attempt from the Agent Server's 1-based one (its `metadata` event): a retried run's second
    attempt is attempt 1, as in the spend log, whose metadata the server's graph config carries."""
    if isinstance(server_attempt, int) and not isinstance(server_attempt, bool) and server_attempt >= 1:
        return server_attempt - 1
    return default


class StreamTranslator:
    """Stateful: feed parts with `on_part`, end with `finish()` or `fail(code)`; read `final` after."""

    def __init__(
        self, request: GraphRunRequest, *, executor_type: ExecutorType, provider_thread_id: str | None = None
    ) -> None:
        self._request = request
        self._executor_type = executor_type
        self._tools = ToolCallAssembler()
        self._streamed_ids: set[str] = set()
        self._last_ai_text: str | None = None
        self._deltas: list[str] = []
        self._usage: dict[str, UsageReport] = {}
        self._attempt = request.attempt
        """0-based; the Agent Server's `metadata` event reports its attempt (1-based) before any output."""
        self._totals = UsageTotals()
        self._ended = False
        self.provider_run_id: str | None = None
        self.provider_thread_id = provider_thread_id
        self.final: GraphFinal | None = None

    # -- input -------------------------------------------------------------------------------
    def on_part(self, mode: str, data: Any) -> list[AiEvent]:
        base = mode.split("|", 1)[0]
        if base == "messages" and isinstance(data, list | tuple) and data:
            return self._on_message(data[0])
        if base == "updates" and isinstance(data, dict):
            return self._on_updates(data)
        if base == "custom":
            self._on_custom(data)
            return []
        if base == "metadata" and isinstance(data, dict):
            self.provider_run_id = str(data.get("run_id") or "") or self.provider_run_id
            self._attempt = attempt_of(data.get("attempt"), self._attempt)
        return []

    def _on_message(self, message: Any) -> list[AiEvent]:
        if not isinstance(message, dict):
            return []
        kind = message.get("type")
        if kind in _AI_TYPES:
            return self._on_ai(message)
        if kind in _TOOL_TYPES:
            return self._on_tool(message)
        return []

    def _on_ai(self, message: dict[str, Any]) -> list[AiEvent]:
        out: list[AiEvent] = []
        message_id = str(message.get("id") or "")
        is_chunk = message.get("type") == "AIMessageChunk"
        if not is_chunk and message_id and message_id in self._streamed_ids:
            return []  # the whole message of one we already streamed token by token
        if is_chunk and message_id:
            self._streamed_ids.add(message_id)
        text = message_text(message.get("content"))
        if text:
            self._deltas.append(text)
            out.append(TextDelta(delta=text))
        if is_chunk:
            for chunk in message.get("tool_call_chunks") or []:
                if isinstance(chunk, dict):
                    out.extend(self._tools.on_chunk(message_id, chunk))
        for call in message.get("tool_calls") or []:
            if isinstance(call, dict) and not is_chunk:
                out.extend(self._tools.on_complete_call(call))
        return out

    def _on_tool(self, message: dict[str, Any]) -> list[AiEvent]:
        call_id = message.get("tool_call_id")
        if not call_id:
            return []
        is_error = True if message.get("status") == "error" else None
        result = ToolCallResult(
            tool_call_id=str(call_id)[:128],
            result=tool_result_payload(message.get("content")),
            is_error=is_error,
        )
        return list(self._tools.on_result(str(call_id), result))

    def _on_updates(self, data: dict[str, Any]) -> list[AiEvent]:
        out: list[AiEvent] = []
        for update in data.values():
            if not isinstance(update, dict):
                continue
            messages = update.get("messages")
            if isinstance(messages, dict):
                messages = [messages]
            if not isinstance(messages, list):
                continue
            for message in messages:
                if not isinstance(message, dict):
                    continue
                if message.get("type") in _AI_TYPES:
                    calls = message.get("tool_calls") or []
                    for call in calls:
                        if isinstance(call, dict):
                            out.extend(self._tools.on_complete_call(call))
                    text = message_text(message.get("content"))
                    if not calls or text:
                        self._last_ai_text = text
        return out

    def _on_custom(self, data: Any) -> None:
        if not is_llm_call_usage(data):
            return
        try:
            usage = LlmCallUsage.model_validate(data)
            fact = usage.to_usage_fact(
                run_id=self._request.run_id,
                attempt=usage.attempt if usage.attempt is not None else self._attempt,
                executor_type=self._executor_type,
                billing_account_id=self._request.billing_account_id,
                virtual_key_id=self._request.virtual_key_id,
                graph_id=self._request.graph_id,
                source=SourceSystem.LITELLM,
            )
        except ValidationError as exc:
            USAGE_EVENTS_REJECTED.inc()
            log.warning("usage_event_rejected", run_id=self._request.run_id, error=str(exc))
            return
        if fact.usage_unit_id in self._usage:
            return
        self._usage[fact.usage_unit_id] = UsageReport(fact=fact)
        self._totals.calls += 1
        self._totals.input_tokens += fact.input_tokens or 0
        self._totals.output_tokens += fact.output_tokens or 0
        self._totals.cost_usd += fact.cost_usd or Decimal(0)

    # -- end ---------------------------------------------------------------------------------
    def finish(self) -> list[AiEvent]:
        """Success: held tool events, one assistant_final, a usage_report per call, done."""
        if self._ended:
            return []
        out: list[AiEvent] = list(self._tools.flush())
        content = self._last_ai_text if self._last_ai_text is not None else "".join(self._deltas)
        out.append(AssistantFinal(content=content))
        out.extend(self._usage.values())
        out.append(Done())
        self._end(ok=True, error=None, content=content)
        return out

    def fail(self, code: AiExecutionErrorCode) -> list[AiEvent]:
        """Failure: the calls already made are still reported for billing, then error and done."""
        if self._ended:
            return []
        out: list[AiEvent] = list(self._usage.values())
        out.extend([ErrorEvent(error=code), Done()])
        self._end(ok=False, error=code, content="".join(self._deltas))
        return out

    def _end(self, *, ok: bool, error: AiExecutionErrorCode | None, content: str) -> None:
        self._ended = True
        self.final = GraphFinal(
            ok=ok,
            error=error,
            content=content,
            usage=self._totals,
            tool_calls=[ToolCallRecord(s.tool_call_id, s.tool_name, s.args) for s in self._tools.started],
            provider_run_id=self.provider_run_id,
            provider_thread_id=self.provider_thread_id,
            usage_facts=[report.fact for report in self._usage.values()],
        )
