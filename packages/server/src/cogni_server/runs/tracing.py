"""The spans of one run on the worker: its time in the queue, its execution, one span per graph node
and one per LLM call, all continuing the trace of the request that created the run.

The request's W3C context travels in the run's settings (``trace_carrier``), so the worker that claims
the run (this instance or another, after a crash) continues that trace; an attempt after the first
says which one it is and links the context it continues. Only built when tracing is on (``observe``
is a no-op context otherwise): a run pays nothing for it by default.
"""

from __future__ import annotations

import contextlib
import contextvars
import datetime as dt
import time
from collections.abc import Iterator, Mapping
from typing import Any
from uuid import UUID

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.outputs import LLMResult
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Link, Span, SpanKind, Status, StatusCode

from cogni_ai_core.observability import (
    bind_ids,
    extract_context,
    inject_carrier,
    next_span_id,
    stable_span_id,
    tracer,
    tracing_enabled,
)
from cogni_server.runs.inputs import with_callback

_tracer = tracer("cogni_server.runs")
LITELLM_USAGE_KEY = "litellm"  # where the graphs' LLM client keeps the call's usage (response_metadata)
_graph_spans: contextvars.ContextVar[GraphSpans | None] = contextvars.ContextVar("cogni_graph_spans", default=None)


class GraphSpans(BaseCallbackHandler):
    """LangChain callbacks that open a span per graph node and per chat-model call.

    Inline (``run_inline``): called in the graph's own task, in order, so spans nest as the calls do.
    The graphs' LLM client asks ``trace_headers(run_id)`` for the ``traceparent`` of its call's span
    and sends it to LiteLLM, whose own OpenTelemetry callback then joins the same trace.
    """

    run_inline = True
    raise_error = False

    def __init__(self, root: Context, tracer: trace.Tracer | None = None) -> None:
        self._root = root
        self._tracer = tracer or _tracer
        self._spans: dict[UUID, Span] = {}
        self._owner: dict[UUID, Span | None] = {}  # LangChain run -> the nearest span at or above it

    def _parent(self, parent_run_id: UUID | None) -> Context:
        span = self._owner.get(parent_run_id) if parent_run_id is not None else None
        return trace.set_span_in_context(span) if span is not None else self._root

    def on_chain_start(
        self,
        serialized: dict[str, Any] | None,
        inputs: Any,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        node = (metadata or {}).get("langgraph_node")
        if node and kwargs.get("name") == node:  # the node itself, not a runnable inside it
            span = self._tracer.start_span(
                f"graph.node {node}",
                context=self._parent(parent_run_id),
                attributes={
                    "langgraph.node": str(node),
                    "langgraph.step": int((metadata or {}).get("langgraph_step") or 0),
                },
            )
            self._spans[run_id] = span
            self._owner[run_id] = span
        else:
            self._owner[run_id] = self._owner.get(parent_run_id) if parent_run_id is not None else None

    def on_chain_end(self, outputs: Any, *, run_id: UUID, **kwargs: Any) -> None:
        self._finish(run_id, None)

    def on_chain_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        self._finish(run_id, error)

    def on_chat_model_start(
        self,
        serialized: dict[str, Any] | None,
        messages: Any,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        metadata: dict[str, Any] | None = None,
        invocation_params: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        model = (invocation_params or {}).get("model") or (metadata or {}).get("ls_model_name")
        attributes: dict[str, Any] = {"gen_ai.system": "litellm", "gen_ai.operation.name": "chat"}
        if model:
            attributes["gen_ai.request.model"] = str(model)
        node = (metadata or {}).get("langgraph_node")
        if node:
            attributes["langgraph.node"] = str(node)
        span = self._tracer.start_span(
            f"llm.call {model}" if model else "llm.call",
            context=self._parent(parent_run_id),
            kind=SpanKind.CLIENT,
            attributes=attributes,
        )
        self._spans[run_id] = span
        self._owner[run_id] = span

    def on_llm_end(self, response: LLMResult, *, run_id: UUID, **kwargs: Any) -> None:
        span = self._spans.get(run_id)
        if span is not None:
            for key, value in _usage_attributes(response).items():
                span.set_attribute(key, value)
        self._finish(run_id, None)

    def on_llm_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        self._finish(run_id, error)

    def trace_headers(self, run_id: UUID) -> dict[str, str]:
        """The ``traceparent`` (and ``tracestate``) of the span of LangChain run ``run_id``."""
        span = self._spans.get(run_id)
        return inject_carrier(trace.set_span_in_context(span)) if span is not None else {}

    def _finish(self, run_id: UUID, error: BaseException | None) -> None:
        self._owner.pop(run_id, None)
        span = self._spans.pop(run_id, None)
        if span is None:
            return
        if error is not None and type(error).__name__ != "GraphInterrupt":
            span.record_exception(error)
            span.set_status(Status(StatusCode.ERROR, type(error).__name__))
        span.end()


def _usage_attributes(response: LLMResult) -> dict[str, Any]:
    """Model, tokens, cost and LiteLLM's call id, as the graphs' client recorded them on the message."""
    for generations in response.generations:
        for generation in generations:
            message = getattr(generation, "message", None)
            usage = (getattr(message, "response_metadata", None) or {}).get(LITELLM_USAGE_KEY)
            if isinstance(usage, Mapping):
                return _from_usage(usage)
    return {}


def _from_usage(usage: Mapping[str, Any]) -> dict[str, Any]:
    mapping = {
        "callId": "litellm.call_id",
        "model": "gen_ai.response.model",
        "provider": "gen_ai.provider.name",
        "inputTokens": "gen_ai.usage.input_tokens",
        "outputTokens": "gen_ai.usage.output_tokens",
        "cacheReadTokens": "gen_ai.usage.cache_read_tokens",
        "providerResponseId": "gen_ai.response.id",
    }
    out: dict[str, Any] = {attr: usage[key] for key, attr in mapping.items() if usage.get(key) is not None}
    if usage.get("costUsd") is not None:
        out["cogni.llm.cost_usd"] = float(usage["costUsd"])
    return out


def _epoch_ns(value: Any) -> int | None:
    if isinstance(value, dt.datetime):
        return int(value.timestamp() * 1e9)
    return None


@contextlib.contextmanager
def observe(run: Mapping[str, Any], carrier: Mapping[str, str] | None) -> Iterator[GraphSpans | None]:
    """Log lines of the run carry its ids; with tracing on, the queue and execution spans are opened
    under the creating request's context and a ``GraphSpans`` handler is yielded for the graph."""
    run_id, thread_id = str(run["run_id"]), str(run["thread_id"])
    with bind_ids(run_id=run_id, thread_id=thread_id, tenant=_str(run.get("owner"))):
        if not tracing_enabled():
            yield None
            return
        parent = extract_context(carrier)
        attempt = int(run.get("attempt") or 1)
        attributes: dict[str, str | int] = {
            "cogni.run_id": run_id,
            "cogni.thread_id": thread_id,
            "cogni.graph_id": str(run.get("graph_id")),
            "cogni.run.attempt": attempt,
        }
        queued = _epoch_ns(run.get("created_at"))
        if queued is not None and attempt <= 1:
            now = time.time_ns()
            queue = _tracer.start_span("run.queue", context=parent, start_time=min(queued, now), attributes=attributes)
            queue.end(end_time=now)
        links = []
        if attempt > 1 and parent is not None:  # a retry: linked to the attempt before it (see StableIds)
            previous = trace.SpanContext(
                trace_id=trace.get_current_span(parent).get_span_context().trace_id,
                span_id=stable_span_id(run_id, str(attempt - 1)),
                is_remote=True,
                trace_flags=trace.TraceFlags(trace.TraceFlags.SAMPLED),
            )
            links.append(Link(previous, {"cogni.link": "previous_attempt", "cogni.run.attempt": attempt - 1}))
        with (
            next_span_id(stable_span_id(run_id, str(attempt))),
            _tracer.start_as_current_span("run.execute", context=parent, attributes=attributes, links=links) as span,
        ):
            spans = GraphSpans(trace.set_span_in_context(span))
            token = _graph_spans.set(spans)
            try:
                yield spans
            finally:
                _graph_spans.reset(token)


def with_graph_spans(config: dict[str, Any]) -> dict[str, Any]:
    """The run's config with the node/LLM span callbacks added, when ``observe`` opened spans for it."""
    spans = _graph_spans.get()
    return config if spans is None else with_callback(config, spans)


def _str(value: Any) -> str | None:
    return None if value is None else str(value)
