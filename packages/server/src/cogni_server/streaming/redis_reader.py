"""One blocking Redis reader shared by every live subscriber of a process (issue 9, capacity).

A subscriber (an SSE or WebSocket stream, a ``join``) used to hold its own Redis connection for its
``XREAD BLOCK``: 2,000 idle streams held 2,000 connections. Here a ``SharedStreamReader`` issues one
``XREAD BLOCK`` over the keys currently subscribed, each from the last id its subscribers have, and
fans the entries out in process to the subscribers' queues.

- **Two lanes.** Every read names all of its keys, so its cost grows with them (Redis registers and
  unregisters the block on each key every time it returns). A *hot* lane reads the keys that joined or
  got an event in the last ``HOT_SECONDS``; a *cold* lane reads the idle rest, and returns only when one
  of them gets an event (which makes that key hot again). A run's events go through a read over a few
  keys however many idle streams are open. Each lane has one connection of its own (``redis_xread``).
- **Positions.** Each subscription keeps the id of the last entry queued for it. When several follow
  the same key, the read starts at the lowest of their ids and each gets only entries after its own,
  so a replay (``-1``) and a live subscriber of one stream share the read, and a key read by both
  lanes while it moves is never delivered twice. "From now on" subscriptions start after their key's
  last entry, looked up by the hot lane for all new ones in one pipeline.
- **Joining.** A new subscription (or one that resumes, below) wakes the hot lane if it is blocked on an
  older key set: one ``XADD`` to the lane's wake key ``P:reader:<uuid>:<lane>`` (also in every read of
  the lane, from the last wake id seen, so a wake that reaches Redis first still ends the read). The key
  keeps one entry and expires a second after the last wake. Leaving needs no wake.
- **Backpressure.** Each subscription's queue holds at most ``queue_bound`` entries. A subscriber that
  falls behind is paused at the last entry queued for it (its key drops out of the reads, unless
  others follow it) and resumes, from there, once it has consumed half its queue: a slow reader costs
  a bounded amount of memory and never stalls the others; the events wait in Redis, which retains them.
- **Blips.** A failed read is retried with backoff from the same positions; only a subscription that
  has waited through more than ``outage_seconds`` of failures gets ``BrokerUnavailable``. A key that is
  not a stream (``WRONGTYPE``) fails its own subscribers only.
- **End.** With ``stop_field``, an entry carrying that field is the subscription's last (run streams'
  end marker): it is queued and nothing more is read for that subscription.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import AsyncGenerator, Callable
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from cogni_server.streaming.base import BrokerUnavailable, Outage
from cogni_server.streaming.redis_subscription import KeyState, Subscription, parse_id
from cogni_server.streaming.redis_xread import BlockingXRead, Entry, bulk

_log = logging.getLogger("cogni_server.streaming.redis_reader")

READ_COUNT = 512  # entries per key and read
QUEUE_BOUND = 1024  # entries queued per subscription before it is paused
HOT_SECONDS = 2.0  # a key without a join or an event for this long moves to the cold lane
WAKE_TTL_MS = 1000
_WAKE_FIELDS: Any = {b"w": b"1"}


class _Lane:
    """One blocking read loop: its connection, wake key and state."""

    def __init__(self, control: aioredis.Redis, *, hot: bool, key_prefix: str, block_ms: int, tag: str) -> None:
        self.hot = hot
        self.name = "hot" if hot else "cold"
        self.reader = BlockingXRead.beside(control, count=READ_COUNT, block_ms=block_ms)
        self.wake_key = f"{key_prefix}:reader:{tag}:{self.name}"
        self.wake_encoded = bulk(self.wake_key)
        self.wake_cursor = bulk("0-0")
        self.task: asyncio.Task[None] | None = None
        self.blocked = False  # a read with the current key set may be in flight
        self.woken = False  # a wake was sent since that read started


class SharedStreamReader:
    """Fans ``XREAD BLOCK`` over all subscribed keys (two lanes) out to per-subscription queues."""

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
        self._control = control  # wake-ups and look-ups
        tag = uuid.uuid4().hex
        self._hot = _Lane(control, hot=True, key_prefix=key_prefix, block_ms=block_ms, tag=tag)
        self._cold = _Lane(control, hot=False, key_prefix=key_prefix, block_ms=block_ms, tag=tag)
        self.outage_seconds = outage_seconds
        self.queue_bound = queue_bound
        self._closed_error = closed_error  # None: subscriptions end quietly on close
        self._keys: dict[str, KeyState] = {}
        self._hot_keys: dict[str, KeyState] = {}  # the hot lane's keys: its reads never walk the idle ones
        self._unresolved: list[Subscription] = []  # "from now on": their key's top is looked up next
        self._wakes: set[asyncio.Task[None]] = set()
        self.closed = False

    async def entries(
        self, key: str, after: str | None, *, stop_field: bytes | None = None
    ) -> AsyncGenerator[Entry, None]:
        """Entries of ``key`` after id ``after`` (None: after the key's last entry now), live; ends
        after a ``stop_field`` entry (at once if None and the last entry is one)."""
        sub = Subscription(key, after, stop_field)
        self._add(sub)
        try:
            while True:
                if sub.queue:
                    entry = sub.queue.popleft()
                    if sub.paused and len(sub.queue) <= self.queue_bound // 2:
                        sub.paused = False
                        self._heat(key)
                        self._wake(self._hot)  # its key may have left the reads
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
    def _add(self, sub: Subscription) -> None:
        if self.closed:
            sub.error = self._closed_error() if self._closed_error is not None else None
            sub.done = sub.error is None
            return
        state = self._keys.get(sub.key)
        if state is None:
            state = self._keys[sub.key] = self._hot_keys[sub.key] = KeyState(sub.key)
        state.subs.append(sub)
        if not sub.resolved:
            self._unresolved.append(sub)
        for lane in (self._hot, self._cold):
            if lane.task is None or lane.task.done():
                lane.task = asyncio.get_running_loop().create_task(self._run(lane), name=f"redis-reader-{lane.name}")
        self._heat(sub.key)
        self._wake(self._hot)

    def _remove(self, sub: Subscription) -> None:
        state = self._keys.get(sub.key)
        if state is None:
            return
        with contextlib.suppress(ValueError):
            state.subs.remove(sub)
        if not state.subs:
            del self._keys[sub.key]
            self._hot_keys.pop(sub.key, None)

    def _heat(self, key: str) -> None:
        """The key joined, resumed or got an event: the hot lane reads it (woken if it did not)."""
        state = self._keys.get(key)
        if state is None:
            return
        state.active = time.monotonic()
        if not state.hot:
            state.hot = True
            self._hot_keys[key] = state
            self._wake(self._hot)

    def _wake(self, lane: _Lane) -> None:
        """End the lane's blocked read so the next one covers the current keys and positions."""
        if not lane.blocked or lane.woken or self.closed:
            return
        lane.woken = True
        task = asyncio.get_running_loop().create_task(self._send_wake(lane))
        self._wakes.add(task)
        task.add_done_callback(self._wakes.discard)

    async def _send_wake(self, lane: _Lane) -> None:
        try:
            pipe = self._control.pipeline(transaction=False)
            pipe.xadd(lane.wake_key, _WAKE_FIELDS, maxlen=1)
            pipe.pexpire(lane.wake_key, WAKE_TTL_MS)
            await pipe.execute()
        except Exception as exc:  # the read times out after block_ms anyway
            _log.warning("shared stream reader: could not send a wake-up: %s", exc)

    # -- the read loops ------------------------------------------------------------------------
    def _streams(self, lane: _Lane) -> tuple[list[bytes], list[bytes], dict[str, tuple[int, int]]]:
        """The lane's next read: keys and ids (its wake key's first, encoded), and each key's start.
        The hot lane hands keys idle for HOT_SECONDS to the cold lane."""
        keys, ids = [lane.wake_encoded], [lane.wake_cursor]
        starts: dict[str, tuple[int, int]] = {}
        if lane.hot:
            now = time.monotonic()
            cooled = [key for key, state in self._hot_keys.items() if now - state.active > HOT_SECONDS]
            for key in cooled:
                self._hot_keys.pop(key).hot = False
            if cooled:
                self._wake(self._cold)
        for key, state in (self._hot_keys if lane.hot else self._keys).items():
            if state.hot != lane.hot:
                continue
            lowest = state.lowest()
            if lowest is not None:
                keys.append(state.encoded)
                ids.append(lowest.cursor_bulk)
                starts[key] = lowest.cursor
        return keys, ids, starts

    async def _run(self, lane: _Lane) -> None:
        try:
            await self._loop(lane)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug, not Redis: say so to every subscriber instead of hanging them
            _log.exception("shared stream reader (%s lane) stopped", lane.name)
            for state in self._keys.values():
                for sub in state.subs:
                    sub.fail(exc)

    async def _loop(self, lane: _Lane) -> None:
        backoff = Outage(float("inf"))  # only its backoff: each subscription has its own limit
        failing_since: float | None = None
        while not self.closed:
            starts: dict[str, tuple[int, int]] = {}
            try:
                if lane.hot and self._unresolved:
                    await self._resolve()
                keys, ids, starts = self._streams(lane)
                lane.blocked, lane.woken = True, False
                response = await lane.reader.read(keys, ids)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a dropped connection (or a bad key): read again from the same ids
                lane.blocked = False
                if isinstance(exc, ResponseError) and await self._isolate(exc, starts):
                    continue
                failing_since = failing_since or time.monotonic()
                self._fail_outlasted(lane, exc, failing_since)
                _log.warning("shared stream reader: reading %d stream(s) failed (%s); retrying", len(starts), exc)
                await asyncio.sleep(backoff.failed(exc, "reading streams"))
                continue
            lane.blocked = False
            failing_since = None
            backoff.ok()
            for stream, entries in response:
                key = stream.decode()
                if key == lane.wake_key:
                    lane.wake_cursor = bulk(entries[-1][0])
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
            state = self._keys.get(key)
            for sub in state.subs if state is not None else ():
                sub.fail(error)
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
                sub.fail(top)
                continue
            if top:
                sub.cursor, sub.cursor_bulk = parse_id(top[0][0]), bulk(top[0][0])
            sub.resolved = True
            if top and sub.stop_field is not None and sub.stop_field in top[0][1]:
                sub.done = True  # the stream has ended already
                sub.wake()

    def _deliver(self, key: str, start: tuple[int, int], entries: list[Any]) -> None:
        """Queue the entries (those after ``start``, in order) for each subscription they continue:
        one that joined or resumed behind ``start`` during the read waits for the next read."""
        state = self._keys.get(key)
        if state is None or not entries:
            return
        self._heat(key)
        woken: set[Subscription] = set()
        for entry_id, fields in entries:
            parsed = parse_id(entry_id)
            for sub in state.subs:
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

    def _fail_outlasted(self, lane: _Lane, error: BaseException, failing_since: float) -> None:
        now = time.monotonic()
        for state in list((self._hot_keys if lane.hot else self._keys).values()):
            if state.hot != lane.hot:
                continue
            for sub in state.subs:
                waited = now - max(failing_since, sub.joined)
                if sub.error is None and not sub.done and waited >= self.outage_seconds:
                    unavailable = BrokerUnavailable(
                        f"reading {sub.key}: Redis unreachable for {waited:.1f}s, past the limit of"
                        f" {self.outage_seconds:g}s (COGNI_BROKER_OUTAGE_SECONDS): {error}"
                    )
                    unavailable.__cause__ = error
                    sub.fail(unavailable)

    async def close(self) -> None:
        """Stop reading: subscribers drain their queues, then end (or raise ``closed_error``)."""
        if self.closed:
            return
        self.closed = True
        for lane in (self._hot, self._cold):
            if lane.task is not None:
                lane.task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await lane.task
        for task in list(self._wakes):
            task.cancel()
        for state in self._keys.values():
            for sub in state.subs:
                sub.wake()
        for lane in (self._hot, self._cold):
            await lane.reader.close()
        with contextlib.suppress(Exception):
            await self._control.delete(self._hot.wake_key, self._cold.wake_key)
