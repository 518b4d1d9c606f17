"""Stream broker seam (live events, replay, cancellation, worker wake-ups) and SSE encoding.

Two implementations pass the same test suite: ``InMemoryBroker`` (one process, the embedded default)
and ``RedisBroker`` (Redis Streams, any instance can serve any stream). ``build_broker`` picks one.

Thread-level stream (``GET /threads/{id}/stream``): a thread has its own stream, separate from its
runs' streams, with its own ids. ``publish(run_id, ..., thread_id=t)`` appends the event to the run's
stream and mirrors it to thread ``t``'s stream in the same call (one Redis round trip);
``subscribe_thread`` reads it with the same ``last_event_id`` rules as ``subscribe`` and never ends by
itself: the route stops it when the client disconnects.

Subscribing: ``last_event_id=None`` yields only events published from the moment of subscribing, so
for a run you just created subscribe with ``"-1"`` (nothing the worker published before you attached
is lost). A subscription to a stream that expired (or never existed) waits until ``end()``: callers
check the run's status in Postgres first and do not subscribe to long-finished runs.
"""

from __future__ import annotations

from cogni_server.streaming.base import (
    CONTROL_ACTIONS,
    DEFAULT_OUTAGE_SECONDS,
    BrokerClosed,
    BrokerUnavailable,
    StreamBroker,
    StreamEvent,
    parse_event_id,
)
from cogni_server.streaming.memory import DEFAULT_MAX_BYTES, InMemoryBroker
from cogni_server.streaming.redis_broker import RedisBroker
from cogni_server.streaming.sse import HEARTBEAT, encode_sse


def build_broker(
    redis_url: str | None,
    *,
    key_prefix: str = "cogni",
    outage_seconds: float = DEFAULT_OUTAGE_SECONDS,
    memory_bytes: int = DEFAULT_MAX_BYTES,
) -> StreamBroker:
    """Redis broker when a URL is configured, otherwise the in-process one (retaining up to ``memory_bytes``)."""
    if redis_url:
        return RedisBroker.from_url(redis_url, key_prefix=key_prefix, outage_seconds=outage_seconds)
    return InMemoryBroker(max_bytes=memory_bytes)


__all__ = [
    "CONTROL_ACTIONS",
    "HEARTBEAT",
    "BrokerClosed",
    "BrokerUnavailable",
    "InMemoryBroker",
    "RedisBroker",
    "StreamBroker",
    "StreamEvent",
    "build_broker",
    "encode_sse",
    "parse_event_id",
]
