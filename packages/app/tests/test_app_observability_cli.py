"""`cogni-app serve` refuses a log format or trace exporter it cannot honour, saying which, before it
starts anything (exit 2)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest


@pytest.mark.parametrize(
    ("variable", "value", "named"),
    [("COGNI_LOG_FORMAT", "yaml", "COGNI_LOG_FORMAT='yaml'"), ("OTEL_TRACES_EXPORTER", "zipkin", "zipkin")],
)
def test_serve_refuses_an_unsupported_observability_setting(variable: str, value: str, named: str) -> None:
    env = {**os.environ, variable: value}
    done = subprocess.run(
        [sys.executable, "-m", "cogni_app", "serve", "--port", "1"], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2, done.stderr
    assert named in done.stderr
