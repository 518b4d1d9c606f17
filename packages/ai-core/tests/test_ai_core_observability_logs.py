"""Log lines as an operator reads them: JSON with the ids of the work they belong to, and never a
secret or a user's message, whether logged through structlog or a stdlib logger."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
import structlog
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from cogni_ai_core.observability import LogConfigError, bind_ids, configure_logging, log_format


@pytest.fixture
def stream(monkeypatch: pytest.MonkeyPatch) -> Iterator[io.StringIO]:
    """JSON logging into a buffer; the root logger and structlog are put back afterwards."""
    monkeypatch.setenv("COGNI_LOG_FORMAT", "json")
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    out = io.StringIO()
    configure_logging("test-service", level="info", stream=out)
    try:
        yield out
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
        structlog.reset_defaults()


def _lines(out: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in out.getvalue().splitlines() if line.strip()]


def test_a_line_carries_the_trace_run_thread_tenant_and_request_ids(stream: io.StringIO) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    with provider.get_tracer("test").start_as_current_span("chat") as span:
        with bind_ids(run_id="run-1", thread_id="thread-1", tenant="acct-1", request_id="req-1"):
            structlog.get_logger("cogni_app.test").info("chat_run_started", graph_id="langgraph:chat")
            logging.getLogger("cogni_server.runs").warning("run %s: retried", "run-1")
        structlog.get_logger("cogni_app.test").info("after_the_run")
    trace_id = format(span.get_span_context().trace_id, "032x")
    first, second, after = _lines(stream)
    for line in (first, second):
        assert line["trace_id"] == trace_id and line["span_id"] == format(span.get_span_context().span_id, "016x")
        assert (line["run_id"], line["thread_id"], line["tenant"], line["request_id"]) == (
            "run-1",
            "thread-1",
            "acct-1",
            "req-1",
        )
        assert line["service"] == "test-service" and line["timestamp"]
    assert first["event"] == "chat_run_started" and first["level"] == "info" and first["graph_id"] == "langgraph:chat"
    assert second["event"] == "run run-1: retried" and second["level"] == "warning"
    assert second["logger"] == "cogni_server.runs"
    assert "run_id" not in after and after["trace_id"] == trace_id  # ids unbound when the run's block ends


def test_secrets_and_message_content_never_reach_a_line(stream: io.StringIO) -> None:
    log = structlog.get_logger("cogni_app.test")
    log.info(
        "call",
        authorization="Bearer eyJhbGciOiJIUzI1NiJ9.payload.sig",
        api_key="sk-live-abcdefghijkl",
        content="my secret diary",
        input_messages=[{"role": "user", "content": "my secret diary"}],
        input_tokens=12,
    )
    logging.getLogger("httpx").warning("sent Authorization: Bearer abc.def.ghi with key sk-abcdefghijklmnop")
    text = stream.getvalue()
    for secret in ("eyJhbGciOiJIUzI1NiJ9", "sk-live-abcdefghijkl", "my secret diary", "abc.def.ghi", "sk-abcdefghij"):
        assert secret not in text
    call, warning = _lines(stream)
    assert call["authorization"] == call["api_key"] == call["content"] == call["input_messages"] == "[redacted]"
    assert call["input_tokens"] == 12  # counts are not content
    assert warning["event"] == "sent Authorization: Bearer [redacted] with key [redacted]"


def test_the_format_is_json_off_a_terminal_console_on_one_and_a_typo_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.delenv("COGNI_LOG_FORMAT", raising=False)
    assert log_format(stream=io.StringIO()) == "json"
    assert log_format(stream=Tty()) == "console"
    assert log_format({"COGNI_LOG_FORMAT": "Console"}) == "console"
    with pytest.raises(LogConfigError, match="COGNI_LOG_FORMAT='yaml'"):
        log_format({"COGNI_LOG_FORMAT": "yaml"})
