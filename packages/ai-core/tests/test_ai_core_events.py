import asyncio

import pytest
from pydantic import ValidationError

from cogni_ai_core import (
    AiExecutionError,
    GraphRunConfig,
    InvalidGraphId,
    LlmErrorKind,
    TextDelta,
    ToolCallStart,
    is_ui_event,
    llm_error_kind,
    normalize_error,
    parse_ai_event,
    parse_graph_id,
)


def test_events_discriminate_on_type_with_camel_case_fields() -> None:
    event = parse_ai_event({"type": "tool_call_start", "toolCallId": "call_1", "toolName": "now", "args": {}})
    assert isinstance(event, ToolCallStart) and event.tool_call_id == "call_1"
    assert event.dump() == {"type": "tool_call_start", "toolCallId": "call_1", "toolName": "now", "args": {}}
    assert isinstance(parse_ai_event({"type": "text_delta", "delta": "hi"}), TextDelta)


def test_usage_reports_never_reach_the_ui() -> None:
    report = parse_ai_event(
        {
            "type": "usage_report",
            "fact": {
                "runId": "r",
                "usageUnitId": "u",
                "source": "litellm",
                "executorType": "inproc",
                "billingAccountId": "a",
                "virtualKeyId": "v",
                "graphId": "langgraph:chat",
            },
        }
    )
    assert not is_ui_event(report)
    assert is_ui_event(parse_ai_event({"type": "done"}))


def test_bad_events_are_rejected() -> None:
    with pytest.raises(ValidationError):
        parse_ai_event({"type": "tool_call_start", "toolCallId": "x" * 129, "toolName": "t", "args": {}})
    with pytest.raises(ValidationError):
        parse_ai_event({"type": "error", "error": "kaboom"})
    with pytest.raises(ValidationError):
        parse_ai_event({"type": "nope"})


class _HttpError(Exception):
    def __init__(self, status_code: int) -> None:
        super().__init__(f"status {status_code}")
        self.status_code = status_code


def test_error_normalisation_follows_the_contract_order() -> None:
    assert normalize_error(asyncio.CancelledError()) == "aborted"
    assert normalize_error(_HttpError(429), cancelled=True) == "aborted"
    assert normalize_error(AiExecutionError("insufficient_credits")) == "insufficient_credits"
    assert normalize_error(_HttpError(429)) == "rate_limit"
    assert normalize_error(_HttpError(408)) == "timeout"
    assert normalize_error(_HttpError(500)) == "internal"
    assert normalize_error(ValueError("x")) == "internal"
    assert [llm_error_kind(s) for s in (408, 429, 404, 503)] == [
        LlmErrorKind.TIMEOUT,
        LlmErrorKind.RATE_LIMITED,
        LlmErrorKind.PROVIDER_4XX,
        LlmErrorKind.PROVIDER_5XX,
    ]


def test_graph_ids_are_namespaced() -> None:
    assert str(parse_graph_id("langgraph:poet")) == "langgraph:poet"
    for bad in ("poet", ":poet", "langgraph:", "Lang:poet"):
        with pytest.raises(InvalidGraphId):
            parse_graph_id(bad)


def test_run_config_round_trips_through_configurable_with_node_overrides() -> None:
    config = GraphRunConfig(
        model="gpt-4o-mini",
        run_id="run-1",
        attempt=1,
        billing_account_id="acct-1",
        virtual_key_id="vk-1",
        trace_id="trace-1",
        request_id="req-1",
        tool_ids=[],
        node_models={"agent": "free-chat"},
        node_tool_ids={"agent": ["core__get_current_time"]},
    )
    configurable = config.to_configurable()
    assert configurable["runId"] == "run-1" and configurable["user"] == "acct-1"
    assert configurable["agent__model"] == "free-chat"
    assert configurable["agent__toolIds"] == ["core__get_current_time"]
    back = GraphRunConfig.from_configurable({**configurable, "thread_id": "t", "checkpoint_ns": ""})
    assert back.model_for("agent") == "free-chat" and back.model_for("other") == "gpt-4o-mini"
    assert back.tool_ids_for("agent") == ["core__get_current_time"] and back.tool_ids_for("x") == []
    metadata = back.spend_logs_metadata(graph_id="langgraph:chat", thread_id="t-1")
    assert metadata["run_id"] == "run-1" and metadata["billing_account_id"] == "acct-1"
    assert metadata["trace_id"] == "trace-1" and metadata["thread_id"] == "t-1"
    assert metadata["virtual_key_id"] == "vk-1"
