"""Tracing is configured by the standard OTEL_* variables only: off (nothing installed, nothing sent)
when none asks for it, on with the exporter they name, and a value we cannot honour is refused.
The provider is process-wide, so each case runs in a fresh interpreter."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from cogni_ai_core.observability import TracingConfigError, tracing_requested

PROBE = """
import json
from opentelemetry import trace
from cogni_ai_core.observability import configure_tracing, inject_carrier, tracer, tracing_enabled, shutdown_tracing
installed = configure_tracing("probe-default")
with tracer("probe").start_as_current_span("probe-span"):
    carrier = inject_carrier()
shutdown_tracing()
print("RESULT " + json.dumps({"installed": installed, "enabled": tracing_enabled(), "carrier": carrier,
                              "provider": type(trace.get_tracer_provider()).__name__}))
"""


def _probe(env: dict[str, str]) -> tuple[dict[str, object], str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    done = subprocess.run(
        [sys.executable, "-c", PROBE], env={**clean, **env}, capture_output=True, text=True, timeout=60, check=True
    )
    result = next(line for line in done.stdout.splitlines() if line.startswith("RESULT "))
    return json.loads(result.removeprefix("RESULT ")), done.stdout


def test_without_otel_variables_nothing_is_installed_and_nothing_propagates() -> None:
    result, _ = _probe({})
    assert result == {"installed": False, "enabled": False, "carrier": {}, "provider": "ProxyTracerProvider"}


def test_an_exporter_named_by_the_environment_records_and_propagates_spans() -> None:
    result, stdout = _probe({"OTEL_TRACES_EXPORTER": "console", "OTEL_SERVICE_NAME": "cogni-probe"})
    assert result["installed"] is True and result["enabled"] is True and result["provider"] == "TracerProvider"
    carrier = result["carrier"]
    assert isinstance(carrier, dict) and carrier["traceparent"].startswith("00-")
    assert '"name": "probe-span"' in stdout and '"service.name": "cogni-probe"' in stdout


def test_which_variables_turn_tracing_on(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_TRACES_EXPORTER"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("OTEL_SDK_DISABLED", raising=False)
    assert not tracing_requested()
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "")
    assert not tracing_requested()  # compose passes an empty value when the operator set none
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318")
    assert tracing_requested()
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "none")
    assert not tracing_requested()
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "otlp")
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    assert not tracing_requested()
    monkeypatch.delenv("OTEL_SDK_DISABLED")
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "zipkin")
    with pytest.raises(TracingConfigError, match="zipkin"):
        tracing_requested()


TRACED_PROBE = """
import asyncio
from cogni_ai_core.observability import configure_tracing, shutdown_tracing, traced
configure_tracing("probe")

def broken(*args, **kwargs):
    raise KeyError("nothing to describe")

@traced("ledger.commit", broken)
async def commit(amount):
    return amount * 2

print("RESULT", asyncio.run(commit(21)))
shutdown_tracing()
"""


@pytest.mark.parametrize("exporter", ["console", "none"])
def test_a_traced_call_returns_its_result_even_when_its_attributes_cannot_be_computed(exporter: str) -> None:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    done = subprocess.run(
        [sys.executable, "-c", TRACED_PROBE],
        env={**clean, "OTEL_TRACES_EXPORTER": exporter},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert "RESULT 42" in done.stdout
    if exporter == "console":  # the span is there, marked, and the charge went through
        assert '"name": "ledger.commit"' in done.stdout and '"cogni.attributes_error": true' in done.stdout
    else:
        assert "ledger.commit" not in done.stdout
