"""OpenTelemetry tracing for every process, configured only by the standard ``OTEL_*`` variables.

Off unless an exporter is asked for (``OTEL_EXPORTER_OTLP_ENDPOINT``, ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``
or ``OTEL_TRACES_EXPORTER``): then no provider is installed, the API's tracer is the no-op one and
callers skip their instrumentation altogether (``tracing_enabled()``), so the hot path pays nothing.
When on, the SDK reads the rest itself: ``OTEL_SERVICE_NAME``, ``OTEL_RESOURCE_ATTRIBUTES``,
``OTEL_TRACES_SAMPLER[_ARG]``, ``OTEL_BSP_*``, ``OTEL_EXPORTER_OTLP_[TRACES_]{ENDPOINT,HEADERS,TIMEOUT}``.
Propagation is W3C ``traceparent``/``tracestate`` (the API's default, ``OTEL_PROPAGATORS``).
"""

from __future__ import annotations

import contextvars
import functools
import hashlib
import os
import threading
from collections.abc import Callable, Coroutine, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, ParamSpec, TypeVar

from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator

_ENDPOINTS = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
_EXPORTERS = frozenset({"otlp", "console", "none"})
_lock = threading.Lock()
_configured: bool | None = None
_next_span_id: contextvars.ContextVar[int | None] = contextvars.ContextVar("cogni_next_span_id", default=None)


class StableIds(RandomIdGenerator):
    """Random ids, except for a span opened inside ``next_span_id(id)``: that one gets ``id``.

    So a span can be named before it exists: a run attempt's span id is derived from (run, attempt),
    and the next attempt (on another instance, after a crash that never exported the first one's
    span) links to it, and to the child spans the first attempt did export.
    """

    def generate_span_id(self) -> int:
        wanted = _next_span_id.get()
        if wanted is not None:
            _next_span_id.set(None)
            return wanted
        return super().generate_span_id()


def stable_span_id(*parts: str) -> int:
    """A 64-bit span id derived from ``parts`` (never the invalid 0)."""
    value = int.from_bytes(hashlib.blake2b(":".join(parts).encode(), digest_size=8).digest(), "big")
    return value or 1


@contextmanager
def next_span_id(span_id: int) -> Iterator[None]:
    """The next span opened in this context gets ``span_id`` (with our provider; others ignore it)."""
    token = _next_span_id.set(span_id)
    try:
        yield
    finally:
        _next_span_id.reset(token)


class TracingConfigError(ValueError):
    """An ``OTEL_*`` value this process cannot honour (named in the message)."""


def _exporter_names() -> list[str]:
    raw = os.environ.get("OTEL_TRACES_EXPORTER", "").strip()
    names = [n.strip().lower() for n in raw.split(",") if n.strip()]
    unknown = [n for n in names if n not in _EXPORTERS]
    if unknown:
        raise TracingConfigError(f"OTEL_TRACES_EXPORTER names {unknown}; this process supports {sorted(_EXPORTERS)}")
    if not names and any(os.environ.get(v, "").strip() for v in _ENDPOINTS):
        names = ["otlp"]
    return [n for n in names if n != "none"]


def tracing_requested() -> bool:
    """Whether the environment asks for traces (an exporter or an OTLP endpoint, SDK not disabled)."""
    if os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    return bool(_exporter_names())


def tracing_enabled() -> bool:
    """Whether this process records spans: a real SDK provider is installed (by us or a test)."""
    return _configured is True or _has_sdk_provider()


def _has_sdk_provider() -> bool:
    from opentelemetry.sdk.trace import TracerProvider

    return isinstance(trace.get_tracer_provider(), TracerProvider)


def configure_tracing(service_name: str) -> bool:
    """Install the SDK provider with the exporters the environment names; False (nothing installed)
    when it names none. Idempotent; ``service_name`` is the default for ``OTEL_SERVICE_NAME``."""
    global _configured
    with _lock:
        if _configured is not None:
            return _configured
        names = _exporter_names() if tracing_requested() else []
        if not names:
            _configured = False
            return False
        from opentelemetry.sdk.resources import SERVICE_NAME, Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter

        resource = Resource.create({SERVICE_NAME: os.environ.get("OTEL_SERVICE_NAME") or service_name})
        # the sampler comes from OTEL_TRACES_SAMPLER
        provider = TracerProvider(resource=resource, id_generator=StableIds())
        for name in names:
            exporter: SpanExporter
            if name == "otlp":
                from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

                exporter = OTLPSpanExporter()  # endpoint, headers, timeout from OTEL_EXPORTER_OTLP_*
            else:
                exporter = ConsoleSpanExporter()
            provider.add_span_processor(BatchSpanProcessor(exporter))
        trace.set_tracer_provider(provider)
        _configured = True
        return True


def shutdown_tracing() -> None:
    """Flush and stop the exporters (at process exit; spans of the last requests are not lost)."""
    provider = trace.get_tracer_provider()
    shutdown = getattr(provider, "shutdown", None)
    if callable(shutdown):
        shutdown()


def tracer(name: str) -> trace.Tracer:
    """The tracer of one of our modules (the no-op tracer when tracing is off)."""
    return trace.get_tracer(name)


def inject_carrier(context: Context | None = None) -> dict[str, str]:
    """The W3C headers (``traceparent``, ``tracestate``) of ``context`` (default: the current one);
    empty when there is no recording span, so nothing is sent or stored when tracing is off."""
    span = trace.get_current_span(context)
    if not span.get_span_context().is_valid:
        return {}
    carrier: dict[str, str] = {}
    propagate.inject(carrier, context=context)
    return carrier


def extract_context(carrier: Mapping[str, str] | None) -> Context | None:
    """The remote parent a carrier names; None for an empty or missing one."""
    if not carrier:
        return None
    return propagate.extract(dict(carrier))


def current_trace_id(context: Context | None = None) -> str | None:
    """The 32-hex trace id of the current (or given) span; None without one."""
    span_context = trace.get_current_span(context).get_span_context()
    return format(span_context.trace_id, "032x") if span_context.is_valid else None


def current_span_id(context: Context | None = None) -> str | None:
    """The 16-hex span id of the current (or given) span; None without one."""
    span_context = trace.get_current_span(context).get_span_context()
    return format(span_context.span_id, "016x") if span_context.is_valid else None


P = ParamSpec("P")
R = TypeVar("R")
Attributes = Mapping[str, str | int | float | bool]


def traced(
    name: str, attributes: Callable[..., Attributes] | None = None
) -> Callable[[Callable[P, Coroutine[Any, Any, R]]], Callable[P, Coroutine[Any, Any, R]]]:
    """Run an async function in a span ``name`` (a child of the current one) when tracing is on; with it
    off the function is called as it is. ``attributes(*args, **kwargs)`` names what the span is about."""

    def decorate(func: Callable[P, Coroutine[Any, Any, R]]) -> Callable[P, Coroutine[Any, Any, R]]:
        own = tracer(func.__module__)

        @functools.wraps(func)
        async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            if not tracing_enabled():
                return await func(*args, **kwargs)
            with own.start_as_current_span(name) as span:
                if attributes is not None:
                    try:
                        span.set_attributes(dict(attributes(*args, **kwargs)))
                    except Exception:  # describing the call must never fail the call (a charge, a pass)
                        span.set_attribute("cogni.attributes_error", True)
                return await func(*args, **kwargs)

        return wrapper

    return decorate
