"""Prometheus metrics of the server (exposed at ``GET /metrics``)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

HTTP_REQUESTS = Counter("cogni_http_requests_total", "HTTP requests answered", ["method", "route", "status"])
HTTP_SECONDS = Histogram(
    "cogni_http_request_seconds",
    "Time to the response head",
    ["method", "route"],
    buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
RUNS_CREATED = Counter("cogni_runs_created_total", "Runs created", ["kind"])
RUNS_FINISHED = Counter("cogni_runs_finished_total", "Runs finished", ["status"])
RUN_SECONDS = Histogram(
    "cogni_run_seconds", "Run execution time", buckets=(0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30, 120, 600)
)
RUNS_ACTIVE = Gauge("cogni_runs_active", "Runs executing in this process")
RUNS_REQUEUED = Counter("cogni_runs_requeued_total", "Runs re-queued by the sweeper or a drain")
