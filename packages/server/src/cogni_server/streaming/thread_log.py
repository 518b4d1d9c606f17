"""The per-thread event log of the thread-streaming protocol (``/threads/{id}/stream/events``).

Every protocol event of a thread (from any run, any instance) is appended once, numbered with the
thread's ``seq`` (1, 2, 3 ... never reused) and stored as the exact bytes every reader receives, so a
replay is byte-identical to the live event (same ``event_id``, same payload). Readers subscribe after a
``seq`` and get the retained events after it, then live ones, in seq order.

Numbering is hi/lo: the log hands out numbers below a ceiling that is first raised in Postgres
(``threads.stream_seq``, through ``SeqStore``) ``SEQ_BLOCK`` at a time. A log that lost its state (a
Redis restart, every instance restarted with the in-memory log, the retention window passed) starts
again at that ceiling, above every number it ever handed out: a client's ``since`` never points past
new events.

Writes are buffered: ``publish`` returns at once and one flusher task per process writes in order
(per thread), so a run streaming tokens never waits for a round trip per event; ``flush`` waits
until everything published so far is stored.

Besides plain appends, a publish may ``begin`` a run (the thread's active run), ``end`` it, or
``defer`` events while another run is active: deferred events are appended right after the active
run's ``end`` (or before the next run's ``begin``), so each run's events stay contiguous on the wire
(the protocol's lifecycle events carry no run id the clients read). For the same reason a ``begin``
of another run waits (at most ``HOLD_SECONDS``) while the active run is still writing: its end is on
its way from its instance.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

log = logging.getLogger("cogni_server.thread_log")

SEQ_BLOCK = 1000  # numbers reserved in Postgres per round trip
DEFAULT_MAX_EVENTS = 10_000  # retained events per thread (oldest dropped first)
DEFAULT_TTL_SECONDS = 3600.0  # a thread's log is dropped this long after its last event
MODES = ("append", "begin", "end", "defer")
HOLD_SECONDS = 5.0  # a begin waits this long at most for the previous active run's end
_HOLD_RETRY_SECONDS = 0.02
_MAX_BUFFERED = 20_000
_RETRY_FOR_SECONDS = 30.0


@dataclass(slots=True, frozen=True)
class PendingEvent:
    """An event before it is numbered: ``tail`` is the envelope after ``"seq":N,`` (method, params)."""

    method: str
    channel: str
    namespace: tuple[str, ...]
    tail: bytes


@dataclass(slots=True, frozen=True)
class StoredEvent:
    """A numbered event as stored: ``data`` is the whole JSON envelope sent to every reader."""

    seq: int
    method: str
    channel: str
    namespace: tuple[str, ...]
    data: bytes


class SeqStore(Protocol):
    """The durable seq ceiling of each thread (Postgres); None means the thread does not exist."""

    async def ceiling(self, thread_id: str) -> int | None: ...

    async def reserve(self, thread_id: str, at_least: int, block: int) -> int | None: ...


class ThreadLog(Protocol):
    max_events: int
    ttl_seconds: float

    def publish(
        self, thread_id: str, events: Sequence[PendingEvent], *, run_id: str | None = None, mode: str = "append"
    ) -> None:
        """Queue events for the thread (see the module docstring for ``mode``); never blocks."""
        ...

    async def flush(self) -> None:
        """Wait until everything published by this process so far is stored and visible."""
        ...

    async def high_water(self, thread_id: str) -> int:
        """The highest seq handed out on the thread (after flushing this process's buffer)."""
        ...

    async def run_start(self, thread_id: str, run_id: str) -> int | None:
        """The seq of the run's first event, if it is still known."""
        ...

    async def active_run(self, thread_id: str) -> str | None:
        """The run that began and has not ended yet, if any."""
        ...

    async def read_range(self, thread_id: str, after: int, until: int | None = None) -> list[StoredEvent]:
        """Retained events with ``after < seq <= until`` (``until`` None: up to the newest)."""
        ...

    def subscribe(self, thread_id: str, after: int) -> AsyncIterator[StoredEvent]:
        """Retained events with seq > ``after``, then live ones; ends only when the log closes (raising)."""
        ...

    async def forget(self, thread_id: str) -> None:
        """Drop the thread's log (the thread was deleted)."""
        ...

    async def close(self) -> None: ...


class LogClosed(RuntimeError):
    """The log shut down while a reader was waiting: the reader should reconnect elsewhere."""


def envelope(seq: int, tail: bytes) -> bytes:
    """The stored bytes of an event: its seq doubles as its stable ``event_id``."""
    s = str(seq).encode()
    return b'{"type":"event","event_id":"' + s + b'","seq":' + s + b"," + tail


def channel_of(method: str, data: Any) -> str:
    """The subscription channel of an event (the clients' ``infer_channel``)."""
    if method in ("input.requested", "input.answered"):
        return "input"
    if method == "custom" and isinstance(data, dict):
        name = data.get("name")
        if isinstance(name, str) and name:
            return f"custom:{name}"
    return method


@dataclass(frozen=True, slots=True)
class EventFilter:
    """What one stream or subscription wants: channels, namespace prefixes and depth."""

    channels: frozenset[str]
    namespaces: tuple[tuple[str, ...], ...] | None = None
    depth: int | None = None

    def matches(self, event: StoredEvent) -> bool:
        channel = event.channel
        if channel not in self.channels and not (channel.startswith("custom:") and "custom" in self.channels):
            return False
        if not self.namespaces:
            return True
        ns = event.namespace
        for prefix in self.namespaces:
            if _is_prefix(ns, prefix) and (self.depth is None or len(ns) - len(prefix) <= self.depth):
                return True
        return False


def _is_prefix(ns: tuple[str, ...], prefix: tuple[str, ...]) -> bool:
    if len(prefix) > len(ns):
        return False
    for want, have in zip(prefix, ns, strict=False):
        if want != have and (":" in want or have.split(":", 1)[0] != want):
            return False
    return True


_PROCESS = uuid.uuid4().hex[:12]
_op_numbers = itertools.count(1)


class _Op:
    __slots__ = ("call", "events", "future", "mode", "run_id", "thread_id")

    def __init__(
        self,
        thread_id: str,
        events: Sequence[PendingEvent],
        run_id: str | None,
        mode: str,
        future: asyncio.Future[None] | None = None,
    ) -> None:
        self.thread_id = thread_id
        self.events = events
        self.run_id = run_id
        self.mode = mode
        self.future = future
        self.call = f"{_PROCESS}:{next(_op_numbers)}"  # identifies the write, so a retry is applied once


class BufferedLog:
    """The buffering shared by both implementations: ``_write`` stores one batch of ops in order."""

    def __init__(
        self, store: SeqStore, *, max_events: int, ttl_seconds: float, hold_seconds: float = HOLD_SECONDS
    ) -> None:
        self.store = store
        self.max_events = max_events
        self.ttl_seconds = ttl_seconds
        self.hold_seconds = hold_seconds
        self.closed = False
        self._buffer: list[_Op] = []
        self._wakeup = asyncio.Event()
        self._flusher: asyncio.Task[None] | None = None

    def publish(
        self, thread_id: str, events: Sequence[PendingEvent], *, run_id: str | None = None, mode: str = "append"
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"unknown thread log mode {mode!r}")
        if self.closed:
            log.warning("thread log closed: %d event(s) of thread %s dropped", len(events), thread_id)
            return
        if len(self._buffer) >= _MAX_BUFFERED:
            dropped = self._buffer.pop(0)
            log.error("thread log buffer full: dropping %d event(s) of thread %s", len(dropped.events), thread_id)
        self._enqueue(_Op(thread_id, list(events), run_id, mode))

    async def flush(self) -> None:
        if self.closed or (not self._buffer and self._flusher is None):
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._enqueue(_Op("", (), None, "append", future))
        await future

    def _enqueue(self, op: _Op) -> None:
        self._buffer.append(op)
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.get_running_loop().create_task(self._flush_loop(), name="thread-log-flusher")
        self._wakeup.set()

    async def _flush_loop(self) -> None:
        while not self.closed:
            if not self._buffer:
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            batch, self._buffer = self._buffer, []
            writes = [op for op in batch if op.future is None]
            deadline = asyncio.get_running_loop().time() + _RETRY_FOR_SECONDS
            delay = 0.1
            while writes:
                try:
                    await self._write(writes)
                    break
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    if asyncio.get_running_loop().time() > deadline or self.closed:
                        log.error("thread log write failed for good, %d op(s) lost: %r", len(writes), exc)
                        writes = []
                        break
                    log.warning("thread log write failed (%r); retrying", exc)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 2.0)
            if writes:  # held back: a run began before the previous run's terminal was written
                self._buffer[:0] = writes + [op for op in batch if op.future is not None]
                await asyncio.sleep(_HOLD_RETRY_SECONDS)
                continue
            for op in batch:
                if op.future is not None and not op.future.done():
                    op.future.set_result(None)

    async def _write(self, ops: list[_Op]) -> None:
        """Store ``ops`` in order, removing each from the list once stored (a retry resumes there).

        Ops of a thread whose ``begin`` must wait (another run of the thread began less than
        ``HOLD_SECONDS`` ago and its end is not written yet: it is on its way from its instance) stay
        in the list, with every later op of that thread, and are tried again shortly.
        """
        raise NotImplementedError

    async def _stop_flusher(self) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.flush(), 10.0)
        self.closed = True
        if self._flusher is not None:
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._flusher
        for op in self._buffer:
            if op.future is not None and not op.future.done():
                op.future.set_result(None)
        self._buffer = []


def group_by_thread(ops: list[_Op]) -> dict[str, list[_Op]]:
    """Ops per thread, each thread's in publish order (threads are independent of each other)."""
    grouped: dict[str, list[_Op]] = {}
    for op in ops:
        grouped.setdefault(op.thread_id, []).append(op)
    return grouped
