"""The W3C ``traceparent`` an LLM call sends to LiteLLM, so the proxy's own OpenTelemetry callback (when
configured) joins the run's trace under the call's span.

Whoever runs the graph may pass a callback handler with ``trace_headers(run_id)`` (the Agent Server's
``GraphSpans``): it gives the headers of the span it opened for this very call. Without one, the
current OpenTelemetry context is used; with tracing off both are empty and nothing is added.
"""

from __future__ import annotations

from typing import Any

from cogni_ai_core.observability import inject_carrier


def trace_headers(run_manager: Any) -> dict[str, str]:
    """The tracing headers for the LLM call of ``run_manager`` (empty when nothing is being traced)."""
    for handler in getattr(run_manager, "handlers", None) or ():
        headers = getattr(handler, "trace_headers", None)
        if callable(headers):
            found = headers(run_manager.run_id)
            if isinstance(found, dict) and found:
                return found
    return inject_carrier()


def with_trace_headers(headers: dict[str, str], run_manager: Any) -> dict[str, str]:
    """``headers`` plus the call's tracing headers (``headers`` itself when there are none)."""
    extra = trace_headers(run_manager)
    return {**headers, **extra} if extra else headers
