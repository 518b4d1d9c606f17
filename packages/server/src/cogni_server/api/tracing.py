"""The server's HTTP request span (OpenTelemetry's ASGI instrumentation), when tracing is on.

It continues the caller's W3C ``traceparent`` (the app's, or any client's), so a run created by the
request, and everything the run does on a worker, lands in the caller's trace. Probes and metrics
scrapes are left out; so are the per-message send/receive spans, which would be one span per SSE event.
"""

from __future__ import annotations

from fastapi import FastAPI

from cogni_ai_core.observability import tracing_enabled

UNTRACED_PATHS = "/ok,/metrics,/info"


def instrument(app: FastAPI) -> None:
    """Trace ``app``'s requests; nothing is installed (and nothing costs) when tracing is off."""
    if not tracing_enabled():
        return
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

    FastAPIInstrumentor.instrument_app(app, excluded_urls=UNTRACED_PATHS, exclude_spans=["receive", "send"])
