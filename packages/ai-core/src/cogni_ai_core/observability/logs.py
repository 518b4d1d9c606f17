"""Structured logs for every process: one structlog configuration, stdlib loggers routed through it.

``COGNI_LOG_FORMAT=json`` gives one JSON object per line (what production and the log stores want);
``console`` gives readable colourless lines; unset means JSON unless stderr is a terminal. Every line
carries what identifies its work where it exists: ``trace_id``/``span_id`` (the current OpenTelemetry
span), and ``run_id``, ``thread_id``, ``tenant``, ``request_id`` bound with ``bind_ids`` for the
duration of a request or a run. Values under secret-looking or content-looking keys are redacted at
every level, so a token or a user's message never reaches a log line by accident.
"""

from __future__ import annotations

import logging
import os
import re
import sys
from collections.abc import Iterator, MutableMapping
from contextlib import contextmanager
from typing import IO, Any

import structlog
from opentelemetry import trace

LOG_FORMATS = ("json", "console")
REDACTED = "[redacted]"
# authorization headers, api keys, JWTs, passwords, cookies, and message/prompt content
_SECRET_KEY = re.compile(
    r"(^|_)(authorization|api_?key|apikey|token|access_token|jwt|secret|password|passwd|cookie|"
    r"content|prompt|messages?|input_messages|body)$",
    re.IGNORECASE,
)
_SECRET_VALUE = re.compile(r"(Bearer\s+)[A-Za-z0-9._~+/=-]+|\bsk-[A-Za-z0-9_-]{6,}")
ID_KEYS = ("trace_id", "run_id", "thread_id", "tenant", "request_id")


class LogConfigError(ValueError):
    """An unsupported ``COGNI_LOG_FORMAT`` (named in the message)."""


def log_format(environ: MutableMapping[str, str] | None = None, stream: IO[str] | None = None) -> str:
    """``json`` or ``console`` from ``COGNI_LOG_FORMAT``; unset: console on a terminal, else JSON."""
    env = os.environ if environ is None else environ
    raw = env.get("COGNI_LOG_FORMAT", "").strip().lower()
    if raw:
        if raw not in LOG_FORMATS:
            raise LogConfigError(f"COGNI_LOG_FORMAT={raw!r} is not supported; use one of {list(LOG_FORMATS)}")
        return raw
    target = stream or sys.stderr
    return "console" if getattr(target, "isatty", lambda: False)() else "json"


def add_trace_ids(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """The current span's trace and span ids (hex, as Tempo and Grafana show them)."""
    context = trace.get_current_span().get_span_context()
    if context.is_valid:
        event.setdefault("trace_id", format(context.trace_id, "032x"))
        event.setdefault("span_id", format(context.span_id, "016x"))
    return event


def redact(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """Blank secret- or content-looking keys, and bearer tokens or keys inside the message text."""
    for key in list(event):
        if key != "event" and _SECRET_KEY.search(key):
            event[key] = REDACTED
    message = event.get("event")
    if isinstance(message, str) and ("Bearer" in message or "sk-" in message):
        event["event"] = _SECRET_VALUE.sub(lambda m: (m.group(1) or "") + REDACTED, message)
    return event


def _shared_processors() -> list[Any]:
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        add_trace_ids,
        redact,
    ]


def configure_logging(service: str, *, level: str = "info", stream: IO[str] | None = None) -> str:
    """Route structlog and the stdlib's loggers (ours, uvicorn's, libraries') through one handler on
    ``stream`` (stderr) in the format ``COGNI_LOG_FORMAT`` asks for; returns that format."""
    fmt = log_format(stream=stream)
    shared = [*_shared_processors(), _service(service)]
    renderer: Any = (
        structlog.processors.JSONRenderer() if fmt == "json" else structlog.dev.ConsoleRenderer(colors=False)
    )
    final: list[Any] = [structlog.stdlib.ProcessorFormatter.remove_processors_meta]
    if fmt == "json":
        final.append(structlog.processors.dict_tracebacks)
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*shared, structlog.stdlib.ExtraAdder()], processors=[*final, renderer]
    )
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        named = logging.getLogger(name)
        named.handlers.clear()
        named.propagate = True
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    return fmt


def _service(service: str) -> Any:
    def add_service(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
        event.setdefault("service", service)
        return event

    return add_service


@contextmanager
def bind_ids(**ids: str | None) -> Iterator[None]:
    """Put ``run_id``, ``thread_id``, ``tenant``, ``request_id`` (those given, not None) on every line
    logged in this context (a request's or a run's task), and take them off again on exit."""
    present = {k: v for k, v in ids.items() if v is not None}
    with structlog.contextvars.bound_contextvars(**present):
        yield
