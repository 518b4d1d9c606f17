"""The thread event log in process memory (the embedded default; one process).

Each thread keeps its last ``max_events`` events in a deque; a thread nobody wrote to or read for
``ttl_seconds`` is dropped. All threads together keep at most about ``max_bytes``
(``COGNI_THREAD_STREAM_MEMORY_MB``): past it, the logs of the threads used least recently are dropped
early, down to 90% of it, except a thread with a subscriber, a run writing, or events deferred. A dropped
log (like a restart) loses the events, never the numbering: the counter starts again at the thread's
durable ceiling (see ``thread_log``). Sizes are estimates (event bytes plus a fixed overhead).
"""

from __future__ import annotations

import asyncio
import time
import weakref
from collections import OrderedDict, deque
from collections.abc import AsyncIterator

from cogni_server.streaming.thread_log import (
    HOLD_SECONDS,
    SEQ_BLOCK,
    BufferedLog,
    LogClosed,
    PendingEvent,
    SeqStore,
    StoredEvent,
    _Op,
    envelope,
    log,
)

_MAX_MARKS = 1000
_PURGE_INTERVAL = 30.0
DEFAULT_MAX_BYTES = 32 * 1024 * 1024
ENTRY_OVERHEAD_BYTES = 200  # per retained event beside its data: StoredEvent, its seq, deque slot (tracemalloc: ~190)
THREAD_OVERHEAD_BYTES = 2400  # per thread: object, deque, marks, WeakSet, dict slot (tracemalloc: ~2.4 KB)
_EVICT_TO = 0.9


def _cost(event: StoredEvent) -> int:
    return len(event.data) + ENTRY_OVERHEAD_BYTES


class _Thread:
    __slots__ = (
        "active",
        "active_at",
        "base",
        "deferred",
        "entries",
        "marks",
        "max",
        "seq",
        "size",
        "subscribers",
        "touched",
        "wakeup",
    )

    def __init__(self, now: float) -> None:
        self.entries: deque[StoredEvent] = deque()
        self.base = 0  # absolute index of entries[0]
        self.size = 0  # estimated bytes of the retained entries
        self.seq: int | None = None  # the last number handed out; None until the first write
        self.max = 0  # numbers up to here are reserved in Postgres
        self.active: str | None = None
        self.active_at = 0.0  # when the active run last wrote
        self.deferred: list[tuple[str, PendingEvent]] = []
        self.marks: OrderedDict[str, int] = OrderedDict()
        self.touched = now
        self.wakeup: asyncio.Event | None = None
        self.subscribers: weakref.WeakSet[_Subscription] = weakref.WeakSet()

    def wake(self) -> None:
        if self.wakeup is not None:
            self.wakeup.set()
            self.wakeup = None

    def index_after(self, after: int) -> int:
        """Absolute index of the first retained event with seq > ``after``."""
        i = len(self.entries)
        while i > 0 and self.entries[i - 1].seq > after:
            i -= 1
        return self.base + i


class _Subscription:
    def __init__(self, owner: InMemoryThreadLog, thread_id: str, after: int) -> None:
        self._owner = owner
        self._thread_id = thread_id
        self._after = after
        self._thread = owner._thread(thread_id)
        self._cursor = self._thread.index_after(after)
        self._thread.subscribers.add(self)

    def __aiter__(self) -> _Subscription:
        return self

    async def __anext__(self) -> StoredEvent:
        while True:
            if self._owner.closed:
                raise LogClosed("the thread event log is shutting down")
            if self._owner._threads.get(self._thread_id) is not self._thread:  # forgotten (and recreated)
                self._thread.subscribers.discard(self)
                self._thread = current = self._owner._thread(self._thread_id)
                current.subscribers.add(self)
                self._cursor = current.index_after(self._after)
            t = self._thread
            idx = self._cursor - t.base
            if idx < 0:  # trimmed by the count cap: continue from the oldest retained
                self._cursor, idx = t.base, 0
            if idx < len(t.entries):
                event = t.entries[idx]
                self._cursor += 1
                if event.seq <= self._after:
                    continue
                self._after = event.seq
                return event
            if t.wakeup is None:
                t.wakeup = asyncio.Event()
            await t.wakeup.wait()

    async def aclose(self) -> None:
        self._thread.subscribers.discard(self)


class InMemoryThreadLog(BufferedLog):
    """ThreadLog for a single process (see the module docstring for retention)."""

    def __init__(
        self,
        store: SeqStore,
        *,
        max_events: int,
        ttl_seconds: float,
        hold_seconds: float = HOLD_SECONDS,
        max_bytes: int = DEFAULT_MAX_BYTES,
    ) -> None:
        super().__init__(store, max_events=max_events, ttl_seconds=ttl_seconds, hold_seconds=hold_seconds)
        self.max_bytes = max_bytes
        self.retained_bytes = 0  # estimated bytes of every thread's retained events
        self.evicted_threads = 0  # thread logs dropped before their TTL to stay within ``max_bytes``
        self._evict_above = max_bytes  # raised after a pass that could not get under the budget
        self._threads: dict[str, _Thread] = {}
        self._next_purge = time.monotonic() + _PURGE_INTERVAL

    def _thread(self, thread_id: str) -> _Thread:
        now = time.monotonic()
        if now >= self._next_purge:
            self._purge(now)
        t = self._threads.get(thread_id)
        if t is None:
            t = self._threads[thread_id] = _Thread(now)
            t.size = THREAD_OVERHEAD_BYTES
            self.retained_bytes += THREAD_OVERHEAD_BYTES
        t.touched = now
        return t

    def _purge(self, now: float) -> None:
        self._next_purge = now + min(_PURGE_INTERVAL, self.ttl_seconds)
        self._evict_above = self.max_bytes
        cutoff = now - self.ttl_seconds
        doomed = [k for k, t in self._threads.items() if t.touched <= cutoff and not t.subscribers]
        for key in doomed:
            self._drop(key)

    def _drop(self, thread_id: str) -> _Thread | None:
        t = self._threads.pop(thread_id, None)
        if t is not None:
            self.retained_bytes -= t.size
        return t

    def _evict(self) -> None:
        """Over ``max_bytes``: drop the least recently used thread logs nobody needs now (see the docstring)."""
        target = self.max_bytes * _EVICT_TO
        idle = sorted(
            (t.touched, key)
            for key, t in self._threads.items()
            if not t.subscribers and t.active is None and not t.deferred
        )
        for _, key in idle:
            if self.retained_bytes <= target:
                break
            self._drop(key)
            self.evicted_threads += 1
        if self.retained_bytes > self.max_bytes:  # threads in use alone: try again after some growth
            self._evict_above = self.retained_bytes + int(self.max_bytes * (1 - _EVICT_TO))

    # -- writing -----------------------------------------------------------------------------
    async def _write(self, ops: list[_Op]) -> None:
        while ops:
            held: dict[str, set[str]] = {}  # thread -> runs whose begin waits (their later ops wait too)
            progressed = False
            for op in list(ops):
                if (op.run_id or "") in held.get(op.thread_id, ()):
                    continue
                if await self._apply(op):
                    ops.remove(op)
                    progressed = True
                else:
                    held.setdefault(op.thread_id, set()).add(op.run_id or "")
            if self.retained_bytes > self._evict_above:
                self._evict()
            if not held or not progressed:
                return  # what is left waits for another run's end (the flusher tries again shortly)

    async def _apply(self, op: _Op) -> bool:
        """Store one op; False when it is a begin that must wait for the previous run's end."""
        t = self._thread(op.thread_id)
        run_id = op.run_id or ""
        recent = time.monotonic() - t.active_at < self.hold_seconds
        if op.mode == "begin" and t.active and t.active != run_id and recent:
            return False
        if t.seq is None:  # start above the durable ceiling, with a fresh block (one round trip)
            ceiling = await self.store.reserve(op.thread_id, 0, SEQ_BLOCK)
            if ceiling is None:
                log.debug("thread %s is gone: %d event(s) dropped", op.thread_id, len(op.events))
                return True
            top = t.entries[-1].seq if t.entries else 0
            t.seq, t.max = max(ceiling - SEQ_BLOCK, top), ceiling
        needed = len(op.events) + len(t.deferred)
        if t.seq + needed > t.max:
            ceiling = await self.store.reserve(op.thread_id, t.seq + needed, SEQ_BLOCK)
            if ceiling is None:
                log.debug("thread %s is gone: %d event(s) dropped", op.thread_id, len(op.events))
                return True
            t.max = max(t.max, ceiling)
        if op.mode == "defer" and t.active:
            t.deferred.extend((run_id, event) for event in op.events)
            return True
        if op.mode == "begin":
            if t.active != run_id:  # leftovers of a run whose process died come before this run
                self._drain(t)
            t.active = run_id
        for event in op.events:
            self._add(t, run_id, event)
        if run_id and run_id == t.active:
            t.active_at = time.monotonic()
        if op.mode == "end" and t.active == run_id:
            t.active = None
            self._drain(t)
        t.wake()
        return True

    def _drain(self, t: _Thread) -> None:
        deferred, t.deferred = t.deferred, []
        for run_id, event in deferred:
            self._add(t, run_id, event)

    def _add(self, t: _Thread, run_id: str, event: PendingEvent) -> None:
        assert t.seq is not None
        t.seq += 1
        seq = t.seq
        stored = StoredEvent(seq, event.method, event.channel, event.namespace, envelope(seq, event.tail))
        t.entries.append(stored)
        cost = _cost(stored)
        if len(t.entries) > self.max_events:
            cost -= _cost(t.entries.popleft())
            t.base += 1
        t.size += cost
        self.retained_bytes += cost
        if run_id and run_id not in t.marks:
            t.marks[run_id] = seq
            while len(t.marks) > _MAX_MARKS:
                t.marks.popitem(last=False)

    # -- reading -----------------------------------------------------------------------------
    async def high_water(self, thread_id: str) -> int:
        await self.flush()
        t = self._threads.get(thread_id)
        if t is not None and t.seq is not None:
            return t.seq
        return await self.store.ceiling(thread_id) or 0

    async def run_start(self, thread_id: str, run_id: str) -> int | None:
        t = self._threads.get(thread_id)
        return None if t is None else t.marks.get(run_id)

    async def active_run(self, thread_id: str) -> str | None:
        t = self._threads.get(thread_id)
        return None if t is None else t.active

    async def read_range(self, thread_id: str, after: int, until: int | None = None) -> list[StoredEvent]:
        t = self._threads.get(thread_id)
        if t is None:
            return []
        return [e for e in t.entries if e.seq > after and (until is None or e.seq <= until)]

    def subscribe(self, thread_id: str, after: int) -> AsyncIterator[StoredEvent]:
        return _Subscription(self, thread_id, after)

    async def forget(self, thread_id: str) -> None:
        t = self._drop(thread_id)
        if t is not None:
            t.wake()

    async def close(self) -> None:
        await self._stop_flusher()
        for t in self._threads.values():
            t.wake()
