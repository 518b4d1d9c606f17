"""The process-wide observability set-up shared by the app, the server and the graphs: OpenTelemetry
tracing from the ``OTEL_*`` variables and one structlog configuration. The one part of ai-core that
touches the outside (exporters, stderr); nothing else here does I/O."""

from cogni_ai_core.observability.attributes import usage_fact_attributes
from cogni_ai_core.observability.logs import (
    ID_KEYS,
    LogConfigError,
    bind_ids,
    configure_logging,
    log_format,
)
from cogni_ai_core.observability.tracing import (
    StableIds,
    TracingConfigError,
    configure_tracing,
    current_span_id,
    current_trace_id,
    extract_context,
    inject_carrier,
    next_span_id,
    shutdown_tracing,
    stable_span_id,
    traced,
    tracer,
    tracing_enabled,
    tracing_requested,
)

__all__ = [
    "ID_KEYS",
    "LogConfigError",
    "StableIds",
    "TracingConfigError",
    "bind_ids",
    "configure_logging",
    "configure_tracing",
    "current_span_id",
    "current_trace_id",
    "extract_context",
    "inject_carrier",
    "log_format",
    "next_span_id",
    "shutdown_tracing",
    "stable_span_id",
    "traced",
    "tracer",
    "tracing_enabled",
    "tracing_requested",
    "usage_fact_attributes",
]
