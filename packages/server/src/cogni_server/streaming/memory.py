"""In-process stream broker: one process, no network, used by the embedded default.

Each run (and each thread) has a bounded buffer of events (a deque capped at ``max_events``; the
oldest are dropped first) plus an absolute cursor base, so a subscriber is just an index into the
buffer. Publishing appends and wakes waiters through an ``asyncio.Event`` that is only allocated when
someone waits: there is no await between a subscriber's "nothing new" check and its wait, so an event
published concurrently with a replay is never missed. Ended runs are dropped ``retention_seconds``
after ``end()``; streams nobody touched for ``idle_ttl_seconds`` are dropped too (a crashed run).
Nothing per run outlives the retention window: thread streams and placeholder run streams (made by a
subscriber of a run that never published) go ``retention_seconds`` after their last use once nobody
subscribes, and control messages ``retention_seconds`` after they were sent. A stream that still has a
live subscriber is never dropped (the subscriber would otherwise wait on an orphan).

What is retained is also bounded in bytes (``max_bytes``, ``COGNI_BROKER_MEMORY_MB``): past it, whole
streams nobody needs live are dropped before their time, least recently used first: ended runs by end
time and unsubscribed thread streams by last event, down to 90% of the budget. A running run's stream,
a subscribed thread's and a run ended less than 5 s ago are never evicted (the first two are capped at
``max_events``), and a subscriber already replaying an evicted stream reads it to its end. Sizes are
estimates (event bytes plus a fixed overhead per event), exposed as ``retained_bytes``.

Each event's bytes are copied once into a right-sized object before they are kept (``right_sized``):
orjson hands back its whole work buffer (at least 4 KiB, and up to ~13 times the JSON's length), so a
kept ``dumps()`` result held several times what the estimate counted, and RSS grew past the budget.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import time
import weakref
from collections import deque
from collections.abc import AsyncIterator

from cogni_server.streaming.base import (
    DEFAULT_IDLE_TTL_SECONDS,
    DEFAULT_MAX_EVENTS,
    DEFAULT_RETENTION_SECONDS,
    BrokerClosed,
    ControlWaiters,
    PendingWakeup,
    StreamEvent,
    parse_event_id,
    validate_control_action,
)

_PURGE_INTERVAL = 1.0
_IDLE_SCAN_INTERVAL = 30.0
DEFAULT_MAX_BYTES = 128 * 1024 * 1024
ENTRY_OVERHEAD_BYTES = 280  # per retained event beside its data: id, key tuple, object headers (tracemalloc: ~270)
STREAM_OVERHEAD_BYTES = 2000  # per stream: the object, its deque, its subscribers' WeakSet (measured ~2 KB)
_EVICT_TO = 0.9  # an eviction pass frees down to this share of the budget
MIN_RETAINED_SECONDS = 5.0  # an ended run's stream is kept this long whatever the budget (a /wait subscribing late)

log = logging.getLogger("cogni_server.streaming")


def right_sized(data: bytes) -> bytes:
    """A copy of ``data`` whose allocation is its length, for bytes kept for minutes.

    orjson (3.12 on) returns bytes whose allocation is its whole work buffer and never shrinks it:
    ``dumps({"count": 1})`` holds 4 KiB, a 5 KB event 64 KiB (measured with tracemalloc;
    ``sys.getsizeof`` shows only the length). The copy costs a memcpy per published event."""
    return bytes(memoryview(data))


def _cost(item: StreamEvent) -> int:
    return len(item.data) + len(item.event) + ENTRY_OVERHEAD_BYTES


class _Stream:
    """One run's or thread's retained events and the wake-up for its live subscribers."""

    __slots__ = ("base", "ended", "ended_at", "entries", "last", "size", "subscribers", "touched", "wakeup")

    def __init__(self, now: float) -> None:
        self.entries: deque[tuple[tuple[int, int], StreamEvent]] = deque()
        self.base = 0  # absolute index of entries[0]
        self.size = 0  # estimated bytes of the retained entries
        self.last = (0, -1)
        self.ended = False
        self.ended_at = 0.0
        self.touched = now
        self.wakeup: asyncio.Event | None = None
        # live subscriptions; weak, so one the route dropped without aclose() does not pin the stream
        self.subscribers: weakref.WeakSet[_Subscription] = weakref.WeakSet()

    def next_id(self) -> tuple[int, int]:
        millis = int(time.time() * 1000)
        last_ms, last_seq = self.last
        self.last = (last_ms, last_seq + 1) if millis <= last_ms else (millis, 0)
        return self.last

    def wake(self) -> None:
        if self.wakeup is not None:
            self.wakeup.set()
            self.wakeup = None

    def head(self) -> int:
        return self.base + len(self.entries)

    def index_after(self, key: tuple[int, int]) -> int:
        """Absolute index of the first retained event whose id is strictly greater than ``key``."""
        entries = self.entries
        i = len(entries)
        while i > 0 and entries[i - 1][0] > key:
            i -= 1
        return self.base + i


class _Subscription:
    """Async iterator over a stream; its start position is fixed when ``subscribe()`` is called."""

    def __init__(self, broker: InMemoryBroker, stream: _Stream, cursor: int, after: tuple[int, int] | None):
        self._broker = broker
        self._stream = stream
        self._cursor = cursor
        self._after = after
        stream.subscribers.add(self)

    def __aiter__(self) -> _Subscription:
        return self

    async def __anext__(self) -> StreamEvent:
        stream = self._stream
        while True:
            idx = self._cursor - stream.base
            if idx < 0:  # evicted by the count cap: continue from the oldest retained
                self._cursor = stream.base
                idx = 0
            if idx < len(stream.entries):
                key, event = stream.entries[idx]
                self._cursor += 1
                if self._after is not None and key <= self._after:
                    continue
                return event
            if stream.ended or self._broker.closed:
                self._stream.subscribers.discard(self)
                raise StopAsyncIteration
            if stream.wakeup is None:
                stream.wakeup = asyncio.Event()
            await stream.wakeup.wait()

    async def aclose(self) -> None:
        """Stop counting as a subscriber (the stream may then be dropped once idle)."""
        self._stream.subscribers.discard(self)


class InMemoryBroker:
    """StreamBroker for a single process (see the module docstring for retention rules)."""

    def __init__(
        self,
        *,
        retention_seconds: float = DEFAULT_RETENTION_SECONDS,
        max_events: int = DEFAULT_MAX_EVENTS,
        idle_ttl_seconds: float = DEFAULT_IDLE_TTL_SECONDS,
        max_bytes: int = DEFAULT_MAX_BYTES,
        min_retention_seconds: float = MIN_RETAINED_SECONDS,
    ) -> None:
        self.retention_seconds = retention_seconds
        self.max_events = max_events
        self.idle_ttl_seconds = idle_ttl_seconds
        self.max_bytes = max_bytes
        self.min_retention_seconds = min_retention_seconds
        self.retained_bytes = 0  # estimated bytes of every retained event (run and thread streams)
        self.evicted_streams = 0  # streams dropped before their time to stay within ``max_bytes``
        self._evict_above = max_bytes  # raised after a pass that could not get under the budget
        self._warned_at = -1e9
        self.closed = False
        self._runs: dict[str, _Stream] = {}
        self._threads: dict[str, _Stream] = {}
        self._ended: deque[tuple[float, str, _Stream]] = deque()
        self._next_purge = 0.0
        self._scan_interval = max(0.0, min(_IDLE_SCAN_INTERVAL, retention_seconds))
        self._next_idle_scan = time.monotonic() + self._scan_interval
        self._controls: dict[str, tuple[str, float]] = {}
        self._control_times: deque[tuple[float, str]] = deque()  # expiry order of ``_controls``
        self._control_waiters = ControlWaiters()
        self._pending = PendingWakeup()

    # -- streams -----------------------------------------------------------------------------
    def _append(self, stream: _Stream, event: str, data: bytes, resumable: bool, now: float) -> str:
        key = stream.next_id()
        item = StreamEvent(f"{key[0]}-{key[1]}", event, data, resumable)
        stream.entries.append((key, item))
        cost = _cost(item)
        if len(stream.entries) > self.max_events:
            cost -= _cost(stream.entries.popleft()[1])
            stream.base += 1
        stream.size += cost
        self.retained_bytes += cost
        stream.touched = now
        stream.wake()
        return item.id

    async def publish(
        self, run_id: str, event: str, data: bytes, *, resumable: bool = True, thread_id: str | None = None
    ) -> str:
        now = time.monotonic()
        data = right_sized(data)  # kept for minutes (one copy shared by the run's and thread's streams)
        stream = self._runs.get(run_id)
        if stream is None:
            stream = self._runs[run_id] = self._new_stream(now)
        elif stream.ended:  # a retried run publishes again: reopen, keeping ids monotonic
            stream.ended = False
        event_id = self._append(stream, event, data, resumable, now)
        if thread_id is not None:
            self._append(self._thread(thread_id, now), event, data, resumable, now)
        if now >= self._next_purge:
            self._purge(now)
        if self.retained_bytes > self._evict_above:
            self._evict(now)
        return event_id

    def _thread(self, thread_id: str, now: float) -> _Stream:
        stream = self._threads.get(thread_id)
        if stream is None:
            stream = self._threads[thread_id] = self._new_stream(now)
        return stream

    async def end(self, run_id: str) -> None:
        now = time.monotonic()
        stream = self._runs.get(run_id)
        if stream is None:
            stream = self._runs[run_id] = self._new_stream(now)
        if not stream.ended:
            stream.ended = True
            stream.ended_at = stream.touched = now
            self._ended.append((now, run_id, stream))
            stream.wake()
        self._controls.pop(run_id, None)
        self._purge(now)

    def subscribe(self, run_id: str, *, last_event_id: str | None = None) -> AsyncIterator[StreamEvent]:
        now = time.monotonic()
        if now >= self._next_purge:
            self._purge(now)
        stream = self._runs.get(run_id)
        if stream is None:
            stream = self._runs[run_id] = self._new_stream(now)
        return self._subscription(stream, last_event_id)

    def subscribe_thread(self, thread_id: str, *, last_event_id: str | None = None) -> AsyncIterator[StreamEvent]:
        return self._subscription(self._thread(thread_id, time.monotonic()), last_event_id)

    def _subscription(self, stream: _Stream, last_event_id: str | None) -> _Subscription:
        if last_event_id is None:
            return _Subscription(self, stream, stream.head(), None)
        if last_event_id.strip() == "-1":
            return _Subscription(self, stream, stream.base, None)
        after = parse_event_id(last_event_id)
        return _Subscription(self, stream, stream.index_after(after), after)

    # -- retention ---------------------------------------------------------------------------
    def _purge(self, now: float) -> None:
        self._next_purge = now + _PURGE_INTERVAL
        self._evict_above = self.max_bytes
        cutoff = now - self.retention_seconds
        while self._ended and self._ended[0][0] <= cutoff:
            _, run_id, stream = self._ended.popleft()
            if self._runs.get(run_id) is stream and stream.ended and stream.ended_at <= cutoff:
                self._drop(self._runs, run_id)
        while self._control_times and self._control_times[0][0] <= cutoff:
            sent, run_id = self._control_times.popleft()
            found = self._controls.get(run_id)
            if found is not None and found[1] == sent:
                del self._controls[run_id]
        if now >= self._next_idle_scan:
            self._next_idle_scan = now + self._scan_interval
            self._drop_idle(self._runs, now - self.idle_ttl_seconds, cutoff)
            self._drop_idle(self._threads, cutoff, cutoff)

    def _new_stream(self, now: float) -> _Stream:
        stream = _Stream(now)
        stream.size = STREAM_OVERHEAD_BYTES
        self.retained_bytes += STREAM_OVERHEAD_BYTES
        return stream

    def _drop(self, streams: dict[str, _Stream], key: str) -> _Stream | None:
        stream = streams.pop(key, None)
        if stream is not None:
            self.retained_bytes -= stream.size
        return stream

    def _evict(self, now: float) -> None:
        """Over ``max_bytes``: drop ended run streams and unsubscribed thread streams, least recently used
        first, until at most 90% of the budget is retained (see the module docstring)."""
        target = self.max_bytes * _EVICT_TO
        recent = now - self.min_retention_seconds
        ended = [
            (at, run_id, True)
            for at, run_id, s in self._ended
            if at <= recent and self._runs.get(run_id) is s and s.ended
        ]
        idle = sorted((s.touched, key, False) for key, s in self._threads.items() if not s.subscribers)
        dropped = 0
        for _, key, is_run in heapq.merge(ended, idle):
            if self.retained_bytes <= target:
                break
            if self._drop(self._runs if is_run else self._threads, key) is not None:
                dropped += 1
        self._ended = deque(e for e in self._ended if self._runs.get(e[1]) is e[2])
        self.evicted_streams += dropped
        if self.retained_bytes > self.max_bytes:  # live streams alone: try again after some growth, or next purge
            self._evict_above = self.retained_bytes + int(self.max_bytes * (1 - _EVICT_TO))
            if now - self._warned_at >= 60.0:
                self._warned_at = now
                log.warning(
                    "in-memory broker: live streams hold ~%d bytes, over COGNI_BROKER_MEMORY_MB (%d bytes)",
                    self.retained_bytes,
                    self.max_bytes,
                )

    def _drop_idle(self, streams: dict[str, _Stream], idle_cutoff: float, empty_cutoff: float) -> None:
        """Drop unsubscribed live streams untouched since ``idle_cutoff`` (or, if they never had an
        event, since ``empty_cutoff``). Ended run streams are left to the retention queue."""
        doomed = [
            key
            for key, s in streams.items()
            if not s.ended
            and not s.subscribers
            and s.touched <= (empty_cutoff if not s.entries and s.base == 0 else idle_cutoff)
        ]
        for key in doomed:
            self._drop(streams, key)

    # -- control -----------------------------------------------------------------------------
    async def publish_control(self, run_id: str, action: str) -> None:
        validate_control_action(action)
        now = time.monotonic()
        self._controls[run_id] = (action, now)
        self._control_times.append((now, run_id))
        self._control_waiters.deliver(run_id, action)

    async def wait_control(self, run_id: str) -> str:
        if self.closed:
            raise BrokerClosed("broker closed while waiting for a control message")
        found = self._controls.get(run_id)
        if found is not None:
            return found[0]
        waiter = self._control_waiters.add(run_id)
        try:
            return await waiter
        finally:  # cancelled or answered: never leave a waiter behind (one per run otherwise leaks)
            self._control_waiters.forget(run_id, waiter)

    # -- wake-ups ----------------------------------------------------------------------------
    async def notify_run_pending(self) -> None:
        self._pending.wake()

    async def wait_run_pending(self, timeout: float) -> bool:  # noqa: ASYNC109 (contract signature)
        return await self._pending.wait(timeout)

    async def forget(self, *, run_ids: list[str], thread_ids: list[str]) -> None:
        for run_id in run_ids:
            stream = self._drop(self._runs, run_id)
            if stream is not None:
                stream.wake()
            self._controls.pop(run_id, None)
        for thread_id in thread_ids:
            stream = self._drop(self._threads, thread_id)
            if stream is not None:
                stream.wake()

    async def close(self) -> None:
        self.closed = True
        for streams in (self._runs, self._threads):
            for stream in streams.values():
                stream.wake()
        self._control_waiters.fail_all()
