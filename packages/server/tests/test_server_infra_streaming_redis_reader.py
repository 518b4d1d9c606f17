"""The shared Redis reader (issue 9, capacity): an instance's idle subscribers hold no connection
each, a slow subscriber is paused without stalling the others, and a killed reader connection only
delays events (exactly once, in order) until the outage limit."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from typing import Any

import pytest
import redis.asyncio as aioredis

from cogni_server.streaming import BrokerUnavailable, RedisBroker
from cogni_server.streaming.redis_clients import COMMAND_CONNECTIONS, connection_name
from cogni_server.streaming.redis_reader import HOT_SECONDS
from cogni_server.streaming.thread_log import PendingEvent
from cogni_server.streaming.thread_log_redis import RedisThreadLog
from testsupport import free_port

from .streaming_helpers import REDIS_URL, collect, delete_prefixed_keys, payloads, publish_n, run_id, take

pytestmark = pytest.mark.integration


async def named_connections(prefix: str) -> list[int]:
    """Ids of the Redis connections named after ``prefix`` (this test's brokers and logs only)."""
    admin = aioredis.Redis.from_url(REDIS_URL)
    try:
        return [int(c["id"]) for c in await admin.client_list() if c.get("name") == connection_name(prefix)]
    finally:
        await admin.aclose()  # type: ignore[attr-defined]


async def kill_connections(prefix: str) -> int:
    admin = aioredis.Redis.from_url(REDIS_URL)
    killed = 0
    try:
        for client_id in await named_connections(prefix):
            with contextlib.suppress(Exception):  # gone already
                killed += int(await admin.execute_command("CLIENT", "KILL", "ID", client_id))
    finally:
        await admin.aclose()  # type: ignore[attr-defined]
    return killed


async def test_idle_subscribers_share_a_few_connections(redis_prefix: str) -> None:
    """500 subscribers (run and thread streams) wait at once: the broker holds a handful of Redis
    connections, not one per subscriber, and every subscriber gets its own stream's event."""
    broker = RedisBroker.from_url(REDIS_URL, key_prefix=redis_prefix)
    runs, threads = [run_id() for _ in range(250)], [run_id() for _ in range(250)]

    async def first(source: object) -> bytes:
        async for event in source:  # type: ignore[attr-defined]
            return bytes(event.data)
        raise AssertionError("stream ended without an event")

    try:
        waiting = [asyncio.create_task(first(broker.subscribe(r, last_event_id="-1"))) for r in runs]
        waiting += [asyncio.create_task(first(broker.subscribe_thread(t))) for t in threads]
        await asyncio.sleep(1.0)
        assert not [t for t in waiting if t.done()], [t.exception() for t in waiting if t.done()]
        held = await named_connections(redis_prefix)
        assert len(held) <= 4, f"{len(held)} connections for 500 idle subscribers"
        for i, rid in enumerate(runs):
            await broker.publish(rid, "values", b'{"r":%d}' % i)
        for i, tid in enumerate(threads):
            await broker.publish(run_id(), "values", b'{"t":%d}' % i, thread_id=tid)
        got = await asyncio.wait_for(asyncio.gather(*waiting), 20)
        assert got == [b'{"r":%d}' % i for i in range(250)] + [b'{"t":%d}' % i for i in range(250)]
    finally:
        await broker.close()


async def test_a_live_run_is_read_apart_from_idle_streams(redis_prefix: str) -> None:
    """200 idle thread streams move to the cold lane: a run streamed meanwhile is read in reads that
    do not name them, and an idle stream that gets an event still delivers it, then the next."""
    broker = RedisBroker.from_url(REDIS_URL, key_prefix=redis_prefix)
    threads = [run_id() for _ in range(200)]
    hot_reads: list[int] = []
    real_read = broker._shared._hot.reader.read

    async def counting_read(keys: list[bytes], ids: list[bytes]) -> Any:
        hot_reads.append(len(keys))
        return await real_read(keys, ids)

    broker._shared._hot.reader.read = counting_read  # type: ignore[method-assign]
    idle = [broker.subscribe_thread(t) for t in threads]
    waiting = [asyncio.ensure_future(take(s, 2, limit=30)) for s in idle]
    try:
        await asyncio.sleep(HOT_SECONDS + 1.5)
        hot_reads.clear()
        rid = run_id()
        live = asyncio.ensure_future(collect(broker.subscribe(rid, last_event_id="-1")))
        await publish_n(broker, rid, 20)
        await broker.end(rid)
        assert len(await live) == 20
        assert hot_reads and max(hot_reads) <= 3, hot_reads  # the wake key, the run, maybe one more
        await broker.publish(run_id(), "values", b"1", thread_id=threads[7])
        await broker.publish(run_id(), "values", b"2", thread_id=threads[7])
        assert payloads(await waiting[7]) == [b"1", b"2"]
    finally:
        for task in waiting:
            task.cancel()
        await broker.close()


async def test_a_slow_subscriber_is_paused_without_stalling_the_others(redis_prefix: str) -> None:
    """One subscriber stops reading after its first event: the others of the same and of another run
    get all 300 events meanwhile, the slow one holds at most its queue bound, and when it reads
    again it gets the rest, in order, none twice."""
    broker = RedisBroker.from_url(REDIS_URL, key_prefix=redis_prefix, subscriber_queue=8)
    rid, other = run_id(), run_id()
    try:
        slow = broker.subscribe(rid, last_event_id="-1")
        fast = broker.subscribe(rid, last_event_id="-1")
        elsewhere = broker.subscribe(other, last_event_id="-1")
        first_ids = await publish_n(broker, rid, 1)
        assert [e.id for e in await take(slow, 1)] == first_ids
        ids = first_ids + await publish_n(broker, rid, 299, start=1)
        await broker.end(rid)
        await publish_n(broker, other, 300)
        await broker.end(other)
        assert [e.id for e in await collect(fast)] == ids
        assert len(await collect(elsewhere)) == 300
        queued = [len(sub.queue) for state in broker._shared._keys.values() for sub in state.subs]
        assert queued and max(queued) <= 8, queued
        rest = await collect(slow)
        assert [e.id for e in rest] == ids[1:]
        assert payloads(rest) == [b'{"i":%d}' % i for i in range(1, 300)]
    finally:
        await broker.close()


async def test_killed_reader_connections_delay_events_exactly_once(redis_prefix: str) -> None:
    """Subscribers wait while every connection of the broker is killed, again and again, as events
    are published: each subscriber gets every event of its stream once, in order."""
    broker = RedisBroker.from_url(REDIS_URL, key_prefix=redis_prefix, outage_seconds=20.0)
    runs = [run_id() for _ in range(5)]
    try:
        readers = [asyncio.ensure_future(collect(broker.subscribe(r, last_event_id="-1"), limit=30)) for r in runs]
        late = asyncio.ensure_future(collect(broker.subscribe(runs[0], last_event_id="-1"), limit=30))
        await asyncio.sleep(0.2)
        kills = 0
        for batch in range(6):
            kills += await kill_connections(redis_prefix)
            for rid in runs:
                await publish_n(broker, rid, 20, start=batch * 20)
            await asyncio.sleep(0.1)
        for rid in runs:
            await broker.end(rid)
        assert kills >= 6
        for rid, got in zip(runs, await asyncio.gather(*readers), strict=True):
            assert payloads(got) == [b'{"i":%d}' % i for i in range(120)], rid
        assert payloads(await late) == [b'{"i":%d}' % i for i in range(120)]
    finally:
        await broker.close()


async def test_a_key_that_is_not_a_stream_fails_only_its_subscribers(redis_prefix: str) -> None:
    from redis.exceptions import ResponseError

    broker = RedisBroker.from_url(REDIS_URL, key_prefix=redis_prefix)
    client = aioredis.Redis.from_url(REDIS_URL)
    clobbered, fine = run_id(), run_id()
    try:
        await client.set(broker.run_key(clobbered), b"not a stream")
        bad = asyncio.ensure_future(collect(broker.subscribe(clobbered, last_event_id="-1")))
        good = asyncio.ensure_future(collect(broker.subscribe(fine, last_event_id="-1")))
        from_now = asyncio.ensure_future(collect(broker.subscribe(clobbered)))  # its start is looked up first
        with pytest.raises(ResponseError, match="WRONGTYPE"):
            await bad
        with pytest.raises(ResponseError, match="WRONGTYPE"):
            await from_now
        await publish_n(broker, fine, 3)
        await broker.end(fine)
        assert payloads(await good) == [b'{"i":%d}' % i for i in range(3)]
    finally:
        await broker.close()
        await client.aclose()  # type: ignore[attr-defined]


async def test_a_waiting_subscriber_gives_up_past_the_outage_limit(redis_prefix: str) -> None:
    broker = RedisBroker.from_url(f"redis://127.0.0.1:{free_port()}/0", key_prefix=redis_prefix, outage_seconds=1.0)
    try:
        with pytest.raises(BrokerUnavailable, match="COGNI_BROKER_OUTAGE_SECONDS"):
            await collect(broker.subscribe(run_id(), last_event_id="-1"), limit=10)
    finally:
        await broker.close()


class _Store:
    """A Postgres seq ceiling stand-in: every thread exists."""

    async def ceiling(self, thread_id: str) -> int | None:
        return 0

    async def reserve(self, thread_id: str, at_least: int, block: int) -> int | None:
        return at_least + block


async def test_thread_log_subscribers_share_a_few_connections() -> None:
    prefix = f"cogni_test_tlr_{uuid.uuid4().hex[:10]}"
    log = RedisThreadLog.from_url(REDIS_URL, _Store(), key_prefix=prefix, max_events=50, ttl_seconds=60.0)
    threads = [run_id() for _ in range(300)]
    try:
        waiting = [asyncio.ensure_future(take(log.subscribe(t, 0), 1, limit=20)) for t in threads]
        await asyncio.sleep(1.0)
        held = await named_connections(prefix)
        assert len(held) <= 3, f"{len(held)} connections for 300 idle thread subscribers"
        for i, tid in enumerate(threads):
            log.publish(tid, [PendingEvent("custom", "custom", (), b'"params":{"i":%d}}' % i)])
        got = await asyncio.gather(*waiting)
        assert [events[0].data.endswith(b'"params":{"i":%d}}' % i) for i, events in enumerate(got)] == [True] * 300
    finally:
        await log.close()
        await delete_prefixed_keys(prefix)


async def test_a_burst_of_commands_waits_for_a_connection_instead_of_failing() -> None:
    """500 WebSockets opening at once each ask the thread log where the thread stands: every answer
    arrives (redis-py's default pool raised 'Too many connections' past 100) on a bounded pool."""
    prefix = f"cogni_test_tlb_{uuid.uuid4().hex[:10]}"
    log = RedisThreadLog.from_url(REDIS_URL, _Store(), key_prefix=prefix, max_events=50, ttl_seconds=60.0)
    try:
        answers = await asyncio.wait_for(asyncio.gather(*(log.high_water(run_id()) for _ in range(500))), 30)
        assert answers == [0] * 500
        assert len(await named_connections(prefix)) <= COMMAND_CONNECTIONS
    finally:
        await log.close()
        await delete_prefixed_keys(prefix)
