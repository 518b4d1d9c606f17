"""Redis stream broker: any server instance can publish, serve, resume and cancel any run.

Keys (``P`` = key prefix):
- ``P:run:<run_id>``: a Redis Stream per run. Entries ``{e: event, d: data, r: "1"|"0"}``; ``end()``
  appends ``{end: "1"}`` and sets the key's TTL to the retention window (default 120 s). Streams are
  capped with ``XADD MAXLEN ~`` and carry an idle TTL while live (a crashed run's stream expires).
  Event ids are ``<millis>-<seq>`` entry ids, exactly what clients send as Last-Event-ID; after a
  run's first event they are assigned client-side so writes can be batched (``redis_writer``).
- ``P:thread:<thread_id>``: the thread-level stream (same entry format, never ended; it expires
  ``retention_seconds`` after its last event, like an ended run's stream).
- ``P:control:<run_id>``: the last control action for a run (``SET ... EX retention``), so a worker that
  starts waiting after the cancel was sent still sees it; plus a ``P:control`` pub/sub message that
  wakes the waiting worker at once wherever it runs.
- ``P:pending``: pub/sub channel for "a run is pending" wake-ups, fanned out to every instance.

Subscribers read from the last id they have seen, so an event published while a subscriber moves
from replay to live is never skipped. They hold no connection while they wait: one
``SharedStreamReader`` per broker (``redis_reader``) blocks in one ``XREAD`` per lane (recently active
keys, idle keys) and fans the entries out to bounded per-subscriber queues. One pub/sub connection per
broker carries all control and wake-up messages (started on first wait). Own wake-ups are delivered locally at once and
ignored when they come back over pub/sub.

Stream writes (``publish``, ``end``) go through one ``BatchedStreamWriter``
per broker: events queue in order and one flusher task writes them in pipelines, so a long answer
costs a few round trips, not one per token. ``end()`` and ``close()`` write everything queued first.

Dropped connections (a Redis restart, a failover, ``CLIENT KILL``) delay events, they do not fail
runs: writes are retried (see ``redis_writer``), the shared reader reads again from each
subscriber's last id, control messages are re-sent; only an outage longer than ``outage_seconds``
(``COGNI_BROKER_OUTAGE_SECONDS``, default 30) raises ``BrokerUnavailable`` to the caller. Every
connection is named ``cogni:<key prefix>`` (``CLIENT LIST`` shows which are ours).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from cogni_server.streaming.base import (
    DEFAULT_IDLE_TTL_SECONDS,
    DEFAULT_MAX_EVENTS,
    DEFAULT_OUTAGE_SECONDS,
    DEFAULT_RETENTION_SECONDS,
    BrokerClosed,
    ControlWaiters,
    Outage,
    PendingWakeup,
    StreamEvent,
    parse_event_id,
    validate_control_action,
)
from cogni_server.streaming.redis_clients import command_client, connection_name
from cogni_server.streaming.redis_reader import QUEUE_BOUND, SharedStreamReader
from cogni_server.streaming.redis_writer import CONNECTION_ERRORS, BatchedStreamWriter

_log = logging.getLogger(__name__)

_END_FIELD = b"end"
_BLOCK_MS = 5_000
_CONTROL_RECHECK_SECONDS = 5.0


class RedisBroker:
    """StreamBroker over Redis Streams and pub/sub (see the module docstring for the key layout)."""

    def __init__(
        self,
        client: aioredis.Redis,
        *,
        key_prefix: str = "cogni",
        retention_seconds: float = DEFAULT_RETENTION_SECONDS,
        max_events: int = DEFAULT_MAX_EVENTS,
        idle_ttl_seconds: float = DEFAULT_IDLE_TTL_SECONDS,
        block_ms: int = _BLOCK_MS,
        outage_seconds: float = DEFAULT_OUTAGE_SECONDS,
        writer_client: aioredis.Redis | None = None,
        subscriber_queue: int = QUEUE_BOUND,
    ) -> None:
        self._redis = client
        self._writer_redis = writer_client
        self.outage_seconds = outage_seconds
        self.key_prefix = key_prefix
        self.retention_seconds = max(1, int(retention_seconds))
        self.max_events = max_events
        self.idle_ttl_seconds = max(1, int(idle_ttl_seconds))
        self.block_ms = block_ms
        self.closed = False
        self._instance = uuid.uuid4().hex.encode()
        self._control_channel = f"{key_prefix}:control".encode()
        self._pending_channel = f"{key_prefix}:pending".encode()
        self._listener: asyncio.Task[None] | None = None
        self._listener_ready: asyncio.Future[None] | None = None
        self._control_waiters = ControlWaiters()
        self._pending = PendingWakeup()
        self._shared = SharedStreamReader(
            client,
            key_prefix=key_prefix,
            block_ms=block_ms,
            outage_seconds=outage_seconds,
            queue_bound=subscriber_queue,
        )
        self._writer = BatchedStreamWriter(
            writer_client or client,
            run_key=self.run_key,
            thread_key=self.thread_key,
            control_key=self.control_key,
            max_events=max_events,
            idle_ttl_seconds=self.idle_ttl_seconds,
            retention_seconds=self.retention_seconds,
            outage_seconds=outage_seconds,
        )

    @classmethod
    def from_url(cls, url: str, *, key_prefix: str = "cogni", **kwargs: Any) -> RedisBroker:
        """A broker on ``url``: connections named ``cogni:<key prefix>``; the stream writer's own
        client never retries by itself (it retries idempotently, see ``redis_writer``); subscribers
        share one blocking reader (``redis_reader``) with a connection of its own."""
        name = connection_name(key_prefix)
        client = command_client(url, key_prefix=key_prefix)
        writer = aioredis.Redis.from_url(url, decode_responses=False, client_name=name, retry=Retry(NoBackoff(), 0))
        return cls(client, key_prefix=key_prefix, writer_client=writer, **kwargs)

    def run_key(self, run_id: str) -> str:
        return f"{self.key_prefix}:run:{run_id}"

    def thread_key(self, thread_id: str) -> str:
        return f"{self.key_prefix}:thread:{thread_id}"

    def control_key(self, run_id: str) -> str:
        return f"{self.key_prefix}:control:{run_id}"

    # -- streams -----------------------------------------------------------------------------
    async def publish(
        self, run_id: str, event: str, data: bytes, *, resumable: bool = True, thread_id: str | None = None
    ) -> str:
        fields: Any = {b"e": event, b"d": data, b"r": b"1" if resumable else b"0"}
        return await self._writer.publish(run_id, fields, thread_id)

    async def end(self, run_id: str) -> None:
        await self._writer.end(run_id)

    async def flush(self) -> None:
        """Wait until every event published so far through this broker is in Redis."""
        await self._writer.flush()

    def subscribe(self, run_id: str, *, last_event_id: str | None = None) -> AsyncIterator[StreamEvent]:
        start = _start_id(last_event_id)
        return self._read(self.run_key(run_id), start, stop_at_end=True)

    def subscribe_thread(self, thread_id: str, *, last_event_id: str | None = None) -> AsyncIterator[StreamEvent]:
        start = _start_id(last_event_id)
        return self._read(self.thread_key(thread_id), start, stop_at_end=False)

    async def _read(self, key: str, start: str | None, *, stop_at_end: bool) -> AsyncIterator[StreamEvent]:
        if start is None:  # "from now on": our own events published before subscribing are not "new"
            await self._writer.flush()
        stop = _END_FIELD if stop_at_end else None
        async with contextlib.aclosing(self._shared.entries(key, start, stop_field=stop)) as entries:
            async for entry_id, fields in entries:
                if _END_FIELD in fields:
                    if stop_at_end:
                        return
                    continue
                yield StreamEvent(_text(entry_id), _text(fields[b"e"]), fields[b"d"], fields.get(b"r", b"1") == b"1")

    # -- control and wake-ups ------------------------------------------------------------------
    async def publish_control(self, run_id: str, action: str) -> None:
        validate_control_action(action)
        outage = Outage(self.outage_seconds)
        while True:  # both commands are safe to repeat (a repeated message is delivered once)
            try:
                pipe = self._redis.pipeline(transaction=False)
                pipe.set(self.control_key(run_id), action, ex=self.retention_seconds)
                pipe.publish(self._control_channel, f"{run_id}\n{action}")
                await pipe.execute()
                break
            except CONNECTION_ERRORS as exc:
                await asyncio.sleep(outage.failed(exc, f"sending {action} to run {run_id}"))
        self._control_waiters.deliver(run_id, action)

    async def wait_control(self, run_id: str) -> str:
        await self._ensure_listener()
        future = self._control_waiters.add(run_id)
        task = asyncio.current_task()
        try:
            while True:
                try:
                    stored = await self._redis.get(self.control_key(run_id))
                except CONNECTION_ERRORS as exc:  # the pub/sub message or the next re-check tells
                    _log.warning("redis broker: reading the control key of run %s failed: %s", run_id, exc)
                    stored = None
                if task is not None and task.cancelling():
                    # redis-py can swallow a cancellation that lands while it opens a connection;
                    # honour it, or the abandoned wait would poll until the broker closes
                    raise asyncio.CancelledError
                if stored is not None:
                    return _text(stored)
                # the pub/sub message normally wakes us; re-reading the key covers a dropped connection
                done, _ = await asyncio.wait({future}, timeout=_CONTROL_RECHECK_SECONDS)
                if done:
                    return future.result()
                if self.closed:
                    raise BrokerClosed("broker closed while waiting for a control message")
        finally:
            self._control_waiters.forget(run_id, future)

    async def notify_run_pending(self) -> None:
        self._pending.wake()
        try:
            await self._redis.publish(self._pending_channel, self._instance)
        except CONNECTION_ERRORS as exc:  # other instances still poll Postgres (COGNI_POLL_SECONDS)
            _log.warning("redis broker: could not send a pending-run wake-up: %s", exc)

    async def wait_run_pending(self, timeout: float) -> bool:  # noqa: ASYNC109 (contract signature)
        await self._ensure_listener()
        return await self._pending.wait(timeout)

    async def _ensure_listener(self) -> None:
        """Start the pub/sub listener once and wait until its subscriptions are confirmed."""
        if self.closed:
            raise BrokerClosed("broker is closed")
        if self._listener_ready is None:
            self._listener_ready = asyncio.get_running_loop().create_future()
            self._listener = asyncio.create_task(self._listen(self._listener_ready), name="redis-broker-listener")
        await asyncio.shield(self._listener_ready)

    async def _listen(self, ready: asyncio.Future[None]) -> None:
        backoff = 0.2
        reconnect = False
        while not self.closed:
            pubsub = self._redis.pubsub()
            try:
                await pubsub.subscribe(self._control_channel, self._pending_channel)
                confirmed = 0
                while confirmed < 2:
                    msg = await pubsub.get_message(timeout=5.0)
                    if msg is not None and msg["type"] == "subscribe":
                        confirmed += 1
                if not ready.done():
                    ready.set_result(None)
                if reconnect:  # wake-ups may have been missed while disconnected: poll Postgres once
                    self._pending.wake()
                reconnect = True
                backoff = 0.2
                while not self.closed:
                    msg = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                    if msg is not None:
                        self._dispatch(msg["channel"], msg["data"])
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError) as exc:
                _log.warning("redis broker listener lost its connection: %s; retrying", exc)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()  # type: ignore[attr-defined]  # types-redis predates aclose

    def _dispatch(self, channel: bytes, data: bytes) -> None:
        if channel == self._pending_channel:
            if data != self._instance:
                self._pending.wake()
        elif channel == self._control_channel:
            run_id, _, action = _text(data).rpartition("\n")
            self._control_waiters.deliver(run_id, action)

    async def forget(self, *, run_ids: list[str], thread_ids: list[str]) -> None:
        """Delete the keys after writing what is queued (a queued event would bring a key back)."""
        await self._writer.flush()
        keys = [k for r in run_ids for k in (self.run_key(r), self.control_key(r))]
        keys += [self.thread_key(t) for t in thread_ids]
        for start in range(0, len(keys), 500):
            await self._redis.delete(*keys[start : start + 500])

    async def close(self) -> None:
        if self.closed:
            return
        await self._writer.close()  # everything published before close() is written first
        self.closed = True
        await self._shared.close()  # subscribers end
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._listener
        self._control_waiters.fail_all()
        self._pending.release()
        await self._redis.aclose()  # type: ignore[attr-defined]  # types-redis predates aclose
        if self._writer_redis is not None:
            await self._writer_redis.aclose()  # type: ignore[attr-defined]


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _start_id(last_event_id: str | None) -> str | None:
    """Validate Last-Event-ID eagerly (a bad one fails at subscribe time, not mid-stream)."""
    if last_event_id is None:
        return None
    if last_event_id.strip() == "-1":
        return "0-0"
    millis, seq = parse_event_id(last_event_id)
    return f"{millis}-{seq}"
