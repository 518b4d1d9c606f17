"""One blocking Redis reader shared by every live subscriber of a process (issue 9, capacity).

A subscriber (an SSE or WebSocket stream, a ``join``) used to hold its own Redis connection for its
``XREAD BLOCK``: 2,000 idle streams held 2,000 connections. Here one task per ``SharedStreamReader``
issues one ``XREAD BLOCK`` over every key currently subscribed, each from the last id its subscribers
have, on one connection of its own, and fans the entries out in process to the subscribers' queues.

- **Positions.** Each subscription keeps the id of the last entry queued for it. When several follow
  the same key, the read starts at the lowest of their ids and each gets only entries after its own,
  so a replay (``-1``) and a live subscriber of one stream share the read.
- **Joining.** A new subscription (or one that resumes, below) wakes the reader if it is blocked on an
  older key set: one ``XADD`` to this reader's wake key ``P:reader:<uuid>`` (also in every read, from
  the last wake id seen, so a wake sent before the read reaches Redis still ends it). The key keeps one
  entry and expires a second after the last wake. Leaving needs no wake: the next read drops the key.
- **Backpressure.** Each subscription's queue holds at most ``queue_bound`` entries. A subscriber that
  falls behind is paused at the last entry queued for it (its key drops out of the reads, unless
  others follow it) and resumes, from there, once it has consumed half its queue: a slow reader costs
  a bounded amount of memory and never stalls the others; the events wait in Redis, which retains them.
- **Blips.** A failed read is retried with backoff from the same positions; only a subscription that
  has waited through more than ``outage_seconds`` of failures gets ``BrokerUnavailable``.
- **End.** With ``stop_field``, an entry carrying that field is the subscription's last (run streams'
  end marker): it is queued and nothing more is read for that subscription.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections import deque
from collections.abc import AsyncGenerator, Callable
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from cogni_server.streaming.base import BrokerUnavailable, Outage
from cogni_server.streaming.redis_xread import BlockingXRead, Entry, bulk

_log = logging.getLogger("cogni_server.streaming.redis_reader")

READ_COUNT = 512  # entries per key and read
QUEUE_BOUND = 1024  # entries queued per subscription before it is paused
WAKE_TTL_MS = 1000
_WAKE_FIELDS: Any = {b"w": b"1"}


def _parse(entry_id: bytes | str) -> tuple[int, int]:
    text = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    millis, _, seq = text.partition("-")
    return int(millis), int(seq or 0)


class _Subscription:
    __slots__ = (
        "cursor",
        "cursor_bulk",
        "done",
        "error",
        "joined",
        "key",
        "paused",
        "queue",
        "resolved",
        "stop_field",
        "waiter",
    )

    def __init__(self, key: str, after: str | None, stop_field: bytes | None) -> None:
        self.key = key
        self.cursor = _parse(after or "0-0")  # the last entry queued (or the start position)
        self.cursor_bulk = bulk(after or "0-0")  # the cursor as sent in XREAD
        self.resolved = after is not None  # False: "from now on", the key's top is not looked up yet
        self.stop_field = stop_field
        self.queue: deque[Entry] = deque()
        self.waiter: asyncio.Future[None] | None = None
        self.paused = False  # the queue is full: not read for until the subscriber catches up
        self.done = False  # the stop entry is queued
        self.error: BaseException | None = None
        self.joined = time.monotonic()

    @property
    def reading(self) -> bool:
        return self.resolved and not (self.paused or self.done or self.error is not None)

    def wake(self) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)


class SharedStreamReader:
    """Fans one ``XREAD BLOCK`` over all subscribed keys out to per-subscription queues."""

    def __init__(
        self,
        control: aioredis.Redis,
        *,
        key_prefix: str,
        block_ms: int,
        outage_seconds: float,
        closed_error: Callable[[], BaseException] | None = None,
        queue_bound: int = QUEUE_BOUND,
    ) -> None:
        self._reader = BlockingXRead.beside(control, count=READ_COUNT, block_ms=block_ms)  # its own connection
        self._control = control  # wake-ups
        self.wake_key = f"{key_prefix}:reader:{uuid.uuid4().hex}"
        self.block_ms = block_ms
        self.outage_seconds = outage_seconds
        self.queue_bound = queue_bound
        self._closed_error = closed_error  # None: subscriptions end quietly on close
        self._keys: dict[str, list[_Subscription]] = {}
        self._key_bulks: dict[str, bytes] = {self.wake_key: bulk(self.wake_key)}
        self._unresolved: list[_Subscription] = []  # "from now on": their key's top is looked up next
        self._wake_cursor = bulk("0-0")
        self._task: asyncio.Task[None] | None = None
        self._blocked = False  # a read with the current key set may be in flight
        self._woken = False  # a wake was sent since that read started
        self._wakes: set[asyncio.Task[None]] = set()
        self.closed = False

    async def entries(
        self, key: str, after: str | None, *, stop_field: bytes | None = None
    ) -> AsyncGenerator[Entry, None]:
        """Entries of ``key`` after id ``after`` (None: after the key's last entry now), live; ends
        after a ``stop_field`` entry (at once if None and the last entry is one)."""
        sub = _Subscription(key, after, stop_field)
        self._add(sub)
        try:
            while True:
                if sub.queue:
                    entry = sub.queue.popleft()
                    if sub.paused and len(sub.queue) <= self.queue_bound // 2:
                        sub.paused = False
                        self._wake()
                    yield entry
                    continue
                if sub.error is not None:
                    raise sub.error
                if sub.done:
                    return
                if self.closed:
                    if self._closed_error is not None:
                        raise self._closed_error()
                    return
                sub.waiter = asyncio.get_running_loop().create_future()
                try:
                    await sub.waiter
                finally:
                    sub.waiter = None
        finally:
            self._remove(sub)

    # -- membership ----------------------------------------------------------------------------
    def _add(self, sub: _Subscription) -> None:
        if self.closed:
            sub.error = self._closed_error() if self._closed_error is not None else None
            sub.done = sub.error is None
            return
        self._keys.setdefault(sub.key, []).append(sub)
        if not sub.resolved:
            self._unresolved.append(sub)
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run(), name="redis-shared-reader")
        self._wake()

    def _remove(self, sub: _Subscription) -> None:
        subs = self._keys.get(sub.key)
        if subs is None:
            return
        with contextlib.suppress(ValueError):
            subs.remove(sub)
        if not subs:
            del self._keys[sub.key]
            self._key_bulks.pop(sub.key, None)

    def _wake(self) -> None:
        """End a blocked read so the next one covers the current subscriptions and positions."""
        if not self._blocked or self._woken or self.closed:
            return
        self._woken = True
        task = asyncio.get_running_loop().create_task(self._send_wake())
        self._wakes.add(task)
        task.add_done_callback(self._wakes.discard)

    async def _send_wake(self) -> None:
        try:
            pipe = self._control.pipeline(transaction=False)
            pipe.xadd(self.wake_key, _WAKE_FIELDS, maxlen=1)
            pipe.pexpire(self.wake_key, WAKE_TTL_MS)
            await pipe.execute()
        except Exception as exc:  # the read times out after block_ms anyway
            _log.warning("shared stream reader: could not send a wake-up: %s", exc)

    # -- the read loop -------------------------------------------------------------------------
    def _streams(self) -> tuple[list[bytes], list[bytes], dict[str, tuple[int, int]]]:
        """The next read's keys and ids (the wake key's too, encoded), and where each key's read starts."""
        keys, ids = [self._key_bulks[self.wake_key]], [self._wake_cursor]
        starts: dict[str, tuple[int, int]] = {}
        for key, subs in self._keys.items():
            lowest: _Subscription | None = None
            for sub in subs:
                if sub.reading and (lowest is None or sub.cursor < lowest.cursor):
                    lowest = sub
            if lowest is not None:
                encoded = self._key_bulks.get(key)
                if encoded is None:
                    encoded = self._key_bulks[key] = bulk(key)
                keys.append(encoded)
                ids.append(lowest.cursor_bulk)
                starts[key] = lowest.cursor
        return keys, ids, starts

    async def _run(self) -> None:
        try:
            await self._loop()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug, not Redis: say so to every subscriber instead of hanging them
            _log.exception("shared stream reader stopped")
            for subs in self._keys.values():
                for sub in subs:
                    if sub.error is None:
                        sub.error = exc
                        sub.wake()

    async def _loop(self) -> None:
        backoff = Outage(float("inf"))  # only its backoff: each subscription has its own limit
        failing_since: float | None = None
        while not self.closed:
            starts: dict[str, tuple[int, int]] = {}
            try:
                if self._unresolved:
                    await self._resolve()
                keys, ids, starts = self._streams()
                self._blocked, self._woken = True, False
                response = await self._reader.read(keys, ids)
            except asyncio.CancelledError:
                raise
            except ResponseError as exc:  # e.g. WRONGTYPE: fail the subscribers of the key(s) at fault
                self._blocked = False
                if await self._isolate(exc, starts):
                    continue
                failing_since = failing_since or time.monotonic()
                self._fail_outlasted(exc, failing_since)
                _log.warning("shared stream reader: reading %d stream(s) failed (%s); retrying", len(starts), exc)
                await asyncio.sleep(backoff.failed(exc, "reading streams"))
                continue
            except Exception as exc:  # a dropped connection: read again from the same ids
                self._blocked = False
                if failing_since is None:
                    failing_since = time.monotonic()
                self._fail_outlasted(exc, failing_since)
                delay = backoff.failed(exc, "reading streams")
                _log.warning("shared stream reader: reading %d stream(s) failed (%s); retrying", len(starts), exc)
                await asyncio.sleep(delay)
                continue
            self._blocked = False
            failing_since = None
            backoff.ok()
            for stream, entries in response:
                key = stream.decode()
                if key == self.wake_key:
                    self._wake_cursor = bulk(entries[-1][0])
                elif key in starts:
                    self._deliver(key, starts[key], entries)

    async def _isolate(self, error: ResponseError, starts: dict[str, tuple[int, int]]) -> bool:
        """Fail the subscriptions of keys that are not streams (any more) with ``error``; True if any."""
        keys = list(starts)
        try:
            pipe = self._control.pipeline(transaction=False)
            for key in keys:
                pipe.type(key)
            kinds = await pipe.execute()
        except Exception:
            return False
        culprits = [key for key, kind in zip(keys, kinds, strict=True) if kind not in (b"stream", b"none")]
        for key in culprits:
            for sub in self._keys.get(key, ()):
                if sub.error is None:
                    sub.error = error
                    sub.wake()
        return bool(culprits)

    async def _resolve(self) -> None:
        """Start each "from now on" subscription after its key's last entry (one pipeline for all)."""
        batch, self._unresolved = self._unresolved, []
        keys = list(dict.fromkeys(sub.key for sub in batch))
        try:
            pipe = self._control.pipeline(transaction=False)
            for key in keys:
                pipe.xrevrange(key, "+", "-", count=1)
            tops = dict(zip(keys, await pipe.execute(raise_on_error=False), strict=True))
        except BaseException:
            self._unresolved[:0] = batch
            raise
        for sub in batch:
            top = tops[sub.key]
            if isinstance(top, Exception):  # not a stream (WRONGTYPE): this subscription fails, not the reader
                sub.error = top
                sub.wake()
                continue
            if top:
                sub.cursor, sub.cursor_bulk = _parse(top[0][0]), bulk(top[0][0])
            sub.resolved = True
            if top and sub.stop_field is not None and sub.stop_field in top[0][1]:
                sub.done = True  # the stream has ended already
                sub.wake()

    def _deliver(self, key: str, start: tuple[int, int], entries: list[Any]) -> None:
        """Queue the entries (those after ``start``, in order) for each subscription they continue:
        one that joined or resumed behind ``start`` during the read waits for the next read."""
        subs = self._keys.get(key)
        if not subs:
            return
        woken: set[_Subscription] = set()
        for entry_id, fields in entries:
            parsed = _parse(entry_id)
            for sub in subs:
                if not sub.reading or parsed <= sub.cursor or sub.cursor < start:
                    continue
                if len(sub.queue) >= self.queue_bound:
                    sub.paused = True  # resumes from sub.cursor once the subscriber catches up
                    continue
                sub.queue.append((entry_id, fields))
                sub.cursor = parsed
                if sub.stop_field is not None and sub.stop_field in fields:
                    sub.done = True
                woken.add(sub)
        for sub in woken:
            sub.cursor_bulk = bulk(sub.queue[-1][0])
            sub.wake()

    def _fail_outlasted(self, error: BaseException, failing_since: float) -> None:
        now = time.monotonic()
        for subs in self._keys.values():
            for sub in subs:
                waited = now - max(failing_since, sub.joined)
                if sub.error is None and not sub.done and waited >= self.outage_seconds:
                    sub.error = BrokerUnavailable(
                        f"reading {sub.key}: Redis unreachable for {waited:.1f}s, past the limit of"
                        f" {self.outage_seconds:g}s (COGNI_BROKER_OUTAGE_SECONDS): {error}"
                    )
                    sub.error.__cause__ = error
                    sub.wake()

    async def close(self) -> None:
        """Stop reading: subscribers drain their queues, then end (or raise ``closed_error``)."""
        if self.closed:
            return
        self.closed = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        for task in list(self._wakes):
            task.cancel()
        for subs in self._keys.values():
            for sub in subs:
                sub.wake()
        await self._reader.close()
        with contextlib.suppress(Exception):
            await self._control.delete(self.wake_key)
