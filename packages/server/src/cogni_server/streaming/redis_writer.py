"""Batched writes for the Redis broker: many stream events per round trip, none delayed.

A worker streaming a long answer publishes thousands of events one after the other. Awaiting one
Redis round trip per event caps it at a few thousand events per second, so ``publish`` only appends
to an in-process FIFO and returns; one flusher task per broker writes everything buffered with one
non-transactional pipeline whenever it is free. A lone event goes out at once (the flusher is idle),
and under load every event that arrives during a round trip rides on the next one.

Ids are assigned here, client-side, so ``publish`` can return an event's id before it is written.
The first event of a run (per broker) is written with ``*`` and awaited: that learns the stream's
top id, so an existing stream (a retried run, a clock behind Redis's) never rejects ours. Later ids
are ``max(now_ms, last_ms)-<seq>``, strictly increasing per run. Thread streams have many writers
(every run of the thread, in any process), so their entries keep Redis-assigned ids.

A dropped connection only delays events: the flusher retries the batch with backoff (``Outage``)
until Redis answers, for up to ``outage_seconds`` (``COGNI_BROKER_OUTAGE_SECONDS``); meanwhile
publishers keep buffering (and wait once ``MAX_BUFFERED`` events are queued). Retrying is safe for
run streams: their entries carry ids assigned here, so an entry the lost round trip did write comes
back as "ID equal or smaller than the top item" and counts as written; a run's first entry
(``*``) is looked up before it is written again. Thread streams keep Redis-assigned ids and may
repeat an event written just before a connection dropped. This writer's client does not retry on
its own (redis-py's retries would repeat ``*`` entries blindly).

Past the outage limit, or for any other error, a failed write is never swallowed: callers that
await a result (first event, thread events, ``end``) get the exception; for a buffered run event the
error is raised by the next ``publish`` or ``end`` of that run, so the run fails loudly.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from cogni_server.streaming.base import DEFAULT_OUTAGE_SECONDS, BrokerClosed, BrokerUnavailable, Outage, parse_event_id
from cogni_server.streaming.redis_packed import Arg, command, execute

_log = logging.getLogger("cogni_server.streaming.redis_broker")

# "The connection went away": the command may or may not have run, retrying is the answer.
CONNECTION_ERRORS: tuple[type[BaseException], ...] = (RedisConnectionError, RedisTimeoutError, OSError)

_END_FIELDS: Any = {b"end": b"1"}
MAX_BATCH = 1024  # operations per pipeline
MAX_BUFFERED = 8192  # beyond this, publishers wait for the flusher (bounded memory if Redis is slow)
MAX_TRACKED_RUNS = 10_000  # last-id entries kept for runs that never called end() (lost leases)


@dataclass(eq=False)
class _Op:
    """One buffered write. ``kind``: publish | end | barrier."""

    kind: str
    run_id: str = ""
    thread_id: str | None = None
    fields: Any = None
    event_id: str | None = None  # explicit id for the run stream; None = "*"
    future: asyncio.Future[str] | None = None
    commands: list[int] = field(default_factory=list)  # indices of this op's pipeline commands
    tried: bool = False  # sent in a pipeline whose connection dropped: it may be written already
    known_id: str | None = None  # a first entry found written by such a pipeline


class BatchedStreamWriter:
    """Buffers stream writes and flushes them in pipelines from one background task."""

    def __init__(
        self,
        client: aioredis.Redis,
        *,
        run_key: Callable[[str], str],
        thread_key: Callable[[str], str],
        control_key: Callable[[str], str],
        max_events: int,
        idle_ttl_seconds: int,
        retention_seconds: int,
        outage_seconds: float = DEFAULT_OUTAGE_SECONDS,
    ) -> None:
        self._redis = client
        self._run_key, self._thread_key, self._control_key = run_key, thread_key, control_key
        self._max_events = max_events
        self._idle_ttl = idle_ttl_seconds
        self._retention = retention_seconds
        self._buffer: list[_Op] = []
        self._wakeup = asyncio.Event()
        self._flusher: asyncio.Task[None] | None = None
        self._last_ids: OrderedDict[str, tuple[int, int]] = OrderedDict()
        self._seeding: dict[str, asyncio.Future[str]] = {}
        self._errors: dict[str, BaseException] = {}
        self._busy = False
        self._outage = Outage(outage_seconds)
        self.closed = False

    # -- public operations -------------------------------------------------------------------
    async def publish(self, run_id: str, fields: Any, thread_id: str | None) -> str:
        self._raise_if_failed(run_id)
        if len(self._buffer) >= MAX_BUFFERED:
            await self.flush()
        for _ in range(1000):  # each pass either returns or waits for a seed write to finish
            last = self._last_ids.get(run_id)
            if last is not None:
                millis, seq = last
                now = int(time.time() * 1000)
                assigned = (now, 0) if now > millis else (millis, seq + 1)
                self._remember(run_id, assigned)
                event_id = f"{assigned[0]}-{assigned[1]}"
                self._enqueue(_Op("publish", run_id, thread_id, fields, event_id))
                return event_id
            seeding = self._seeding.get(run_id)
            if seeding is not None:
                await asyncio.wait({seeding})
                continue
            op = self._enqueue(_Op("publish", run_id, thread_id, fields, None, self._new_future()))
            assert op.future is not None
            self._seeding[run_id] = op.future
            try:
                return await op.future
            finally:
                if self._seeding.get(run_id) is op.future:
                    del self._seeding[run_id]
        raise RuntimeError(f"could not assign an event id for run {run_id}")  # pragma: no cover

    async def end(self, run_id: str) -> None:
        """Write the end marker after every event buffered before it; raise a pending write error."""
        op = self._enqueue(_Op("end", run_id, future=self._new_future()))
        assert op.future is not None
        try:
            await op.future
        finally:
            self._last_ids.pop(run_id, None)
            earlier = self._errors.pop(run_id, None)
        if earlier is not None:
            raise earlier

    async def flush(self) -> None:
        """Wait until everything buffered so far is written (errors go to their publishers)."""
        if not self._buffer and (self._flusher is None or not self._busy):
            return
        op = self._enqueue(_Op("barrier", future=self._new_future()))
        assert op.future is not None
        await op.future

    async def close(self, timeout: float = 10.0) -> None:  # noqa: ASYNC109 (bounded shutdown)
        if self.closed:
            return
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.flush(), timeout)
        self.closed = True
        if self._flusher is not None:
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._flusher
        self._fail(self._buffer, BrokerClosed("broker closed before the event was written"))
        self._buffer = []

    # -- internals -----------------------------------------------------------------------------
    def _new_future(self) -> asyncio.Future[str]:
        return asyncio.get_running_loop().create_future()

    def _enqueue(self, op: _Op) -> _Op:
        if self.closed:
            raise BrokerClosed("broker is closed")
        self._buffer.append(op)
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.get_running_loop().create_task(self._flush_loop(), name="redis-broker-flusher")
        self._wakeup.set()
        return op

    def _remember(self, run_id: str, event_id: tuple[int, int]) -> None:
        previous = self._last_ids.get(run_id)
        if previous is None or event_id > previous:
            self._last_ids[run_id] = event_id
        self._last_ids.move_to_end(run_id)
        while len(self._last_ids) > MAX_TRACKED_RUNS:
            self._last_ids.popitem(last=False)

    def _raise_if_failed(self, run_id: str) -> None:
        error = self._errors.pop(run_id, None)
        if error is not None:
            raise error

    async def _flush_loop(self) -> None:
        while not self.closed:
            if not self._buffer:
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            batch, self._buffer = self._buffer[:MAX_BATCH], self._buffer[MAX_BATCH:]
            self._busy = True
            try:
                await self._write(batch)
            except asyncio.CancelledError:
                self._fail(batch, BrokerClosed("broker closed while the event was being written"))
                raise
            finally:
                self._busy = False

    async def _write(self, batch: list[_Op]) -> None:
        while True:
            try:
                results = await self._execute(batch)
            except CONNECTION_ERRORS as exc:  # nothing in this batch is known written (or not)
                for op in batch:
                    op.tried = True
                try:
                    delay = self._outage.failed(exc, "writing stream events")
                except BrokerUnavailable as gave_up:
                    self._fail(batch, gave_up)
                    return
                _log.warning("redis broker: writing %d event(s) failed (%s); retrying in %.2fs", len(batch), exc, delay)
                await asyncio.sleep(delay)
                continue
            except Exception as exc:
                self._fail(batch, exc)
                return
            self._outage.ok()
            break
        for op in batch:
            errors = [results[i] for i in op.commands if isinstance(results[i], Exception)]
            if errors and op.tried and op.event_id is not None and _already_written(results[op.commands[0]]):
                errors = errors[1:]  # the dropped round trip wrote this entry
            if errors:
                self._fail([op], errors[0])
                continue
            value = ""
            if op.kind == "publish" and op.event_id is None:
                value = op.known_id or _text(results[op.commands[0]])
                self._remember(op.run_id, parse_event_id(value))
            if op.future is not None and not op.future.done():
                op.future.set_result(value)

    async def _execute(self, batch: list[_Op]) -> list[Any]:
        """One pipeline for the batch, packed here (``redis_packed``); the results, one per command
        (errors as values)."""
        commands: list[bytes] = []
        expired: set[str] = set()

        def add(op: _Op, *args: Arg) -> None:
            op.commands.append(len(commands))
            commands.append(command(*args))

        for op in batch:
            op.commands = []
            if op.kind == "publish":
                key = self._run_key(op.run_id)
                if op.event_id is None and op.tried and op.known_id is None:
                    op.known_id = await self._written_first_entry(key, op.fields)
                if op.known_id is None:
                    add(op, *self._xadd(key, op.event_id or "*", op.fields))
                if key not in expired:  # once per key and batch, before any end() of it in this batch
                    expired.add(key)
                    add(op, b"EXPIRE", key, self._idle_ttl)
            if op.kind == "publish" and op.thread_id is not None:
                tkey = self._thread_key(op.thread_id)
                add(op, *self._xadd(tkey, "*", op.fields))
                if tkey not in expired:
                    expired.add(tkey)
                    add(op, b"EXPIRE", tkey, self._retention)
            elif op.kind == "end":
                key = self._run_key(op.run_id)
                add(op, *self._xadd(key, "*", _END_FIELDS))
                add(op, b"EXPIRE", key, self._retention)
                add(op, b"DEL", self._control_key(op.run_id))
                expired.add(key)
        if not commands:
            return []
        return await execute(self._redis, commands)

    def _xadd(self, key: str, entry_id: str, fields: Any) -> tuple[Arg, ...]:
        """``XADD key MAXLEN ~ n id field value ...`` (the trim approximate, as redis-py's ``approximate``)."""
        flat = [part for pair in fields.items() for part in pair]
        return (b"XADD", key, b"MAXLEN", b"~", self._max_events, entry_id, *flat)

    async def _written_first_entry(self, key: str, fields: Any) -> str | None:
        """The id of a run's first entry if a dropped round trip wrote it (it is the stream's top)."""
        top = await self._redis.xrevrange(key, "+", "-", count=1)
        if top and top[0][1] == _encoded(fields):
            return _text(top[0][0])
        return None

    def _fail(self, ops: list[_Op], error: BaseException) -> None:
        for op in ops:
            if op.future is not None:
                if not op.future.done():
                    op.future.set_exception(error)
                    op.future.exception()  # retrieved here too: a cancelled waiter must not warn
            elif op.kind == "publish":
                self._errors[op.run_id] = error
                while len(self._errors) > MAX_TRACKED_RUNS:  # runs that failed and never came back
                    del self._errors[next(iter(self._errors))]
            if op.kind == "publish":  # the stream's top is unknown now: the next event re-learns it
                self._last_ids.pop(op.run_id, None)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _encoded(fields: Any) -> dict[bytes, bytes]:
    """Stream entry fields as Redis returns them (bytes keys and values)."""
    return {
        (k.encode() if isinstance(k, str) else k): (v.encode() if isinstance(v, str) else v) for k, v in fields.items()
    }


def _already_written(result: Any) -> bool:
    """An explicit-id XADD refused because that id (or a later one) is in the stream already."""
    return isinstance(result, Exception) and "equal or smaller" in str(result)
