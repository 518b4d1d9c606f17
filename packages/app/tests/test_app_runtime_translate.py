"""The shared stream translator: LangGraph parts (server JSON shapes) -> AiEvents, in contract order."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest

from cogni_ai_core import ExecutorType, RunContext, normalize_error
from cogni_app.executors.driver import RemoteRunError
from cogni_app.executors.metrics import TOOL_STREAM_OVERFLOW
from cogni_app.executors.port import GraphRunRequest
from cogni_app.executors.tool_calls import MAX_ARGS_BYTES, MAX_PENDING
from cogni_app.executors.translate import StreamTranslator

REQUEST = GraphRunRequest(
    graph_id="langgraph:poet",
    model="gpt-4o-mini",
    run=RunContext(run_id="run-1", attempt=0, ingress_request_id="req-1", trace_id="t" * 32),
    billing_account_id="acct-1",
    virtual_key_id="vk-1",
    state_key="sk-1",
    input_messages=[{"role": "user", "content": "hi"}],
)


def chunk(msg_id: str, content: str = "", tool_call_chunks: list[dict[str, Any]] | None = None) -> tuple[str, Any]:
    message = {"type": "AIMessageChunk", "id": msg_id, "content": content, "tool_call_chunks": tool_call_chunks or []}
    return ("messages", [message, {"langgraph_node": "agent"}])


def tool_message(call_id: str, content: Any, status: str = "success") -> tuple[str, Any]:
    message = {"type": "tool", "id": f"tm-{call_id}", "tool_call_id": call_id, "content": content, "status": status}
    return ("messages", [message, {"langgraph_node": "tools"}])


def usage(call_id: str, cost: str = "0.000015", inp: int = 10, out: int = 5) -> tuple[str, Any]:
    return ("custom", {"type": "usage", "callId": call_id, "costUsd": cost, "inputTokens": inp, "outputTokens": out,
                       "model": "gpt-4o-mini"})  # fmt: skip


def run(parts: list[tuple[str, Any]], *, fail: str | None = None) -> tuple[list[dict[str, Any]], StreamTranslator]:
    translator = StreamTranslator(REQUEST, executor_type=ExecutorType.LANGGRAPH_SERVER)
    events = []
    for mode, data in parts:
        events.extend(translator.on_part(mode, data))
    events.extend(translator.fail(fail) if fail else translator.finish())  # type: ignore[arg-type]
    return [e.dump() for e in events], translator


def test_text_run_orders_final_then_one_usage_report_per_call_then_done() -> None:
    events, translator = run(
        [
            ("metadata", {"run_id": "srv-run", "attempt": 1}),
            chunk("m1", "Hel"),
            chunk("m1", "lo"),
            usage("call-a"),
            usage("call-a"),  # a duplicate usage event never bills twice
            ("updates", {"agent": {"messages": [{"type": "ai", "id": "m1", "content": "Hello", "tool_calls": []}]}}),
            # the node's whole message again in messages mode: already streamed, not repeated
            ("messages", [{"type": "ai", "id": "m1", "content": "Hello"}, {}]),
        ]
    )
    assert [e["type"] for e in events] == ["text_delta", "text_delta", "assistant_final", "usage_report", "done"]
    assert events[2]["content"] == "Hello"
    fact = events[3]["fact"]
    assert fact["usageUnitId"] == "call-a" and fact["runId"] == "run-1" and fact["graphId"] == "langgraph:poet"
    assert fact["executorType"] == "langgraph_server" and fact["source"] == "litellm"
    assert fact["billingAccountId"] == "acct-1" and fact["virtualKeyId"] == "vk-1"
    final = translator.final
    assert final is not None and final.ok and final.provider_run_id == "srv-run"
    assert final.usage.calls == 1 and final.usage.cost_usd == Decimal("0.000015") and final.usage.input_tokens == 10


def test_tool_call_starts_once_args_parse_with_the_models_id_and_pairs_with_its_result() -> None:
    events, translator = run(
        [
            chunk("m1", "", [{"id": "call_XYZ", "name": "get_weather", "args": '{"ci', "index": 0}]),
            chunk("m1", "", [{"id": None, "name": None, "args": 'ty": "Par', "index": 0}]),
            chunk("m1", "", [{"id": None, "name": None, "args": 'is"}', "index": 0}]),
            usage("call-1"),
            tool_message("call_XYZ", json.dumps({"temp": 21})),
            chunk("m2", "Sunny."),
            usage("call-2"),
        ]
    )
    assert [e["type"] for e in events] == [
        "tool_call_start", "tool_call_result", "text_delta", "assistant_final", "usage_report", "usage_report", "done",
    ]  # fmt: skip
    assert events[0] == {"type": "tool_call_start", "toolCallId": "call_XYZ", "toolName": "get_weather",
                         "args": {"city": "Paris"}}  # fmt: skip
    assert events[1] == {"type": "tool_call_result", "toolCallId": "call_XYZ", "result": {"temp": 21}}
    assert events[3]["content"] == "Sunny."
    assert [e["fact"]["usageUnitId"] for e in events[4:6]] == ["call-1", "call-2"]
    assert translator.final is not None and [c.tool_call_id for c in translator.final.tool_calls] == ["call_XYZ"]


def test_tool_error_result_is_flagged_and_plain_text_is_wrapped() -> None:
    events, _ = run(
        [
            chunk("m1", "", [{"id": "c1", "name": "t", "args": "{}", "index": 0}]),
            tool_message("c1", "boom", status="error"),
        ]
    )
    assert events[1] == {"type": "tool_call_result", "toolCallId": "c1", "result": {"content": "boom"}, "isError": True}


def test_complete_tool_calls_of_a_non_streamed_message_are_started() -> None:
    events, _ = run(
        [
            (
                "messages",
                [
                    {
                        "type": "ai",
                        "id": "m9",
                        "content": "",
                        "tool_calls": [{"id": "c9", "name": "lookup", "args": {"q": "x"}}],
                    },
                    {},
                ],
            ),
            tool_message("c9", {"hits": 1}),
        ]
    )
    assert [e["type"] for e in events][:2] == ["tool_call_start", "tool_call_result"]
    assert events[0]["args"] == {"q": "x"}


def test_arguments_over_64kb_are_dropped_counted_and_the_call_still_pairs() -> None:
    before = TOOL_STREAM_OVERFLOW.labels(kind="args")._value.get()
    big = "x" * (MAX_ARGS_BYTES + 10)
    events, _ = run(
        [
            chunk("m1", "", [{"id": "c1", "name": "t", "args": '{"a": "' + big, "index": 0}]),
            chunk("m1", "", [{"id": None, "name": None, "args": '"}', "index": 0}]),
            tool_message("c1", "{}"),
        ]
    )
    assert TOOL_STREAM_OVERFLOW.labels(kind="args")._value.get() == before + 1
    assert events[0] == {"type": "tool_call_start", "toolCallId": "c1", "toolName": "t", "args": {"_truncated": True}}
    assert events[1]["type"] == "tool_call_result"
    assert sum(1 for e in events if e["type"] == "tool_call_start") == 1


def test_more_than_100_pending_calls_overflow_and_are_counted() -> None:
    before = TOOL_STREAM_OVERFLOW.labels(kind="pending")._value.get()
    parts = [
        chunk("m1", "", [{"id": f"c{i}", "name": "t", "args": '{"open', "index": i}]) for i in range(MAX_PENDING + 3)
    ]
    run(parts)
    assert TOOL_STREAM_OVERFLOW.labels(kind="pending")._value.get() == before + 3


def test_failure_reports_usage_already_incurred_then_error_then_done() -> None:
    events, translator = run([chunk("m1", "par"), usage("call-a")], fail="rate_limit")
    assert [e["type"] for e in events] == ["text_delta", "usage_report", "error", "done"]
    assert events[2] == {"type": "error", "error": "rate_limit"}
    assert translator.final is not None and not translator.final.ok and translator.final.error == "rate_limit"


def test_invalid_usage_event_is_rejected_not_billed() -> None:
    events, _ = run([chunk("m1", "x"), ("custom", {"type": "usage", "callId": "c", "costUsd": "-1"})])
    assert "usage_report" not in [e["type"] for e in events]


@pytest.mark.parametrize(
    ("error_type", "message", "code"),
    [
        ("LlmCallError", "LLM call to 'gpt-4o-mini' failed with HTTP 429: slow down", "rate_limit"),
        ("RateLimitError", "Error code: 429", "rate_limit"),
        ("LlmCallError", "LLM call to 'gpt-4o-mini' timed out", "timeout"),
        ("LlmCallError", "LLM call to 'gpt-4o-mini' failed with HTTP 500: upstream", "internal"),
        ("AiExecutionError", "invalid_request", "invalid_request"),
        (
            "LlmCallError",
            "llm_key_rejected: LLM call to 'gpt-4o-mini' failed with HTTP 401: revoked",
            "llm_key_rejected",
        ),
        ("ValueError", "llm_key_rejected: not from the LLM client", "internal"),
        ("ValueError", "whatever", "internal"),
    ],
)
def test_server_error_events_normalise_like_in_process_exceptions(error_type: str, message: str, code: str) -> None:
    assert normalize_error(RemoteRunError(error_type, message)) == code


def test_usage_is_billed_under_the_attempt_the_agent_server_reports() -> None:
    """Issue 12: the server's metadata event (attempt counted from 1) comes first; a retried run's calls are
    attempt 1, 2, ... as in their spend-log rows, not the attempt 0 the app started with."""
    events, _ = run([("metadata", {"run_id": "srv-run", "attempt": 2}), usage("call-r"), ("updates", {})])
    [report] = [e for e in events if e["type"] == "usage_report"]
    assert report["fact"]["attempt"] == 1
    assert report["fact"]["runId"] == "run-1"
    events, _ = run([("metadata", {"run_id": "srv-run", "attempt": 1}), usage("call-f")])
    assert [e["fact"]["attempt"] for e in events if e["type"] == "usage_report"] == [0]


def test_a_usage_event_naming_its_attempt_is_billed_under_it() -> None:
    """The chaos campaign once charged two calls twice after a kill -9: the relay billed a retried run's calls
    under an attempt its spend-log rows did not name (the reconciler then billed them again under theirs).
    The call's own attempt (the one its spend-log metadata carries) wins over the relay's running idea."""
    events, _ = run(
        [("metadata", {"run_id": "srv-run", "attempt": 1}), ("custom", {**usage("call-a")[1], "attempt": 1})]
    )
    assert [e["fact"]["attempt"] for e in events if e["type"] == "usage_report"] == [1]
