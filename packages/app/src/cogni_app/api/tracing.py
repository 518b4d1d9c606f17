"""The app's HTTP request span (OpenTelemetry's ASGI instrumentation), when tracing is on.

It continues a client's ``traceparent``; the chat's trace id (``X-Trace-Id``, the spend log's
``trace_id``) is then this trace's id. Probes and scrapes are left out, and so are the per-message
send/receive spans (one per SSE event otherwise).
"""

from __future__ import annotations

from fastapi import FastAPI

from cogni_ai_core.observability import tracing_enabled

UNTRACED_PATHS = "/healthz,/metrics"


def instrument(app: FastAPI) -> None:
    """Trace ``app``'s requests; nothing is installed (and nothing costs) when tracing is off."""
    if not tracing_enabled():
        return
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

    FastAPIInstrumentor.instrument_app(app, excluded_urls=UNTRACED_PATHS, exclude_spans=["receive", "send"])
