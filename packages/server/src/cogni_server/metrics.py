"""Prometheus metrics of the server (exposed at ``GET /metrics``)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from prometheus_client import Counter, Gauge, Histogram
from psycopg_pool import AsyncConnectionPool

from cogni_server.storage import queue as queue_repo

log = logging.getLogger("cogni_server.metrics")

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
QUEUE_DEPTH = Gauge(
    "cogni_run_queue_depth", "Runs pending and due (not delayed by after_seconds), all tenants; sampled at scrape"
)
QUEUE_OLDEST_AGE = Gauge(
    "cogni_run_queue_oldest_age_seconds",
    "Seconds the oldest due pending run has waited since it became due (0 when none); sampled at scrape",
)

WEBHOOK_DELIVERIES = Counter(
    "cogni_webhook_deliveries_total",
    "Webhook delivery attempts by outcome: delivered, retry (5xx/408/429/transport error), failed"
    " (4xx, or out of attempts), refused (destination not allowed at send time)",
    ["outcome"],
)
WEBHOOKS_REFUSED = Counter("cogni_webhooks_refused_total", "Webhook destinations refused by the URL policy", ["stage"])
CRON_TICKS = Counter("cogni_cron_ticks_total", "Cron ticks handled: run created, or skipped (why)", ["outcome"])
THREADS_EXPIRED = Counter("cogni_threads_expired_total", "Threads handled by the TTL sweeper", ["strategy"])

STREAM_RETAINED_BYTES = Gauge(
    "cogni_stream_retained_bytes",
    "Estimated bytes of stream events held in process memory (in-memory broker and thread log; 0 with Redis)",
    ["store"],
)
STREAM_EVICTIONS = Gauge(
    "cogni_stream_evictions",
    "Streams (broker) or thread logs dropped before their retention ended to stay within the memory budget",
    ["store"],
)


def _reader(owner: object, attribute: str) -> Callable[[], float]:
    return lambda: float(getattr(owner, attribute, 0))


def watch_stream_memory(*, broker: object, thread_log: object) -> None:
    """Expose what the in-memory broker and thread log retain (read at scrape; Redis-backed ones report 0)."""
    for store, owner, evicted in (("broker", broker, "evicted_streams"), ("thread_log", thread_log, "evicted_threads")):
        STREAM_RETAINED_BYTES.labels(store).set_function(_reader(owner, "retained_bytes"))
        STREAM_EVICTIONS.labels(store).set_function(_reader(owner, evicted))


class QueueSampler:
    """Refreshes the two queue gauges from Postgres when ``/metrics`` is scraped, at most once per
    ``max_age`` seconds.

    Why at scrape time: the value is fresh exactly when Prometheus reads it, an idle process costs
    no queries, and it works in every process (API-only processes have no sweeper loop; the values
    are global, so any instance may report them: aggregate with ``max``, not ``sum``). Why not a
    prometheus-client custom collector: ``collect()`` is synchronous and would block the event loop
    on the query. The short cache keeps many scrapers (or a retry storm) to one cheap indexed query
    per ``max_age`` per process; there is no lock because the timestamp is set before the query, so
    concurrent scrapes reuse the previous values. A failed query keeps the last values and is logged
    (``/health`` reports the database itself).
    """

    def __init__(self, max_age: float = 2.0, query_timeout: float = 2.0) -> None:
        self.max_age = max_age
        self.query_timeout = query_timeout
        self._sampled_at: float | None = None

    async def refresh(self, pool: AsyncConnectionPool[Any]) -> None:
        now = time.monotonic()
        if self._sampled_at is not None and now - self._sampled_at < self.max_age:
            return
        # Stamped before the query (check and set run without an await in between): concurrent
        # scrapes get the previous values instead of a second query, and a down database is not
        # retried on every scrape.
        self._sampled_at = now
        try:
            async with pool.connection(timeout=self.query_timeout) as conn:
                depth, oldest = await asyncio.wait_for(queue_repo.queue_stats(conn), self.query_timeout)
        except Exception as exc:
            log.warning("sampling the run queue for /metrics failed: %s", type(exc).__name__)
            return
        QUEUE_DEPTH.set(depth)
        QUEUE_OLDEST_AGE.set(oldest)


QUEUE_SAMPLER = QueueSampler()
