"""The executor call's span: from the chat request to the Agent Server, carrying ``traceparent``.

The run's part stream is pumped by the relay's task, not the request's, so the request's context is
captured when the run is started and the span is opened under it explicitly (never attached across
the generator's yields). The yielded headers go on every call to the server for this run.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import SpanKind, Status, StatusCode

from cogni_ai_core.observability import inject_carrier, tracer, tracing_enabled

_tracer = tracer("cogni_app.executors")


def request_context() -> Context | None:
    """The caller's context to continue later (None when tracing is off: nothing to capture)."""
    return otel_context.get_current() if tracing_enabled() else None


@contextmanager
def executor_span(name: str, parent: Context | None, attributes: dict[str, str]) -> Iterator[dict[str, str]]:
    """Open span ``name`` under ``parent`` for the duration of the block; yields its W3C headers
    (empty, and no span, when tracing is off)."""
    if parent is None:
        yield {}
        return
    span = _tracer.start_span(name, context=parent, kind=SpanKind.CLIENT, attributes=attributes)
    try:
        yield inject_carrier(trace.set_span_in_context(span))
    except GeneratorExit:  # the reader stopped early: the run goes on, the call ends here
        raise
    except BaseException as exc:
        span.record_exception(exc)
        span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
        raise
    finally:
        span.end()
