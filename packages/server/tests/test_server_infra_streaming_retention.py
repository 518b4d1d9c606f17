"""Retention and leaks, against both brokers: ended streams expire, counts are capped, and hundreds of
runs leave no per-run state behind."""

from __future__ import annotations

import asyncio

import redis.asyncio as aioredis

from cogni_server.streaming import (
    InMemoryBroker,
    RedisBroker,
)

from .streaming_helpers import (
    REDIS_URL,
    BrokerFactory,
    collect,
    publish_n,
    run_id,
)


async def test_ended_streams_expire_after_the_retention_window(make_broker: BrokerFactory) -> None:
    broker = make_broker(shared=False, retention_seconds=1)
    rid = run_id()
    await publish_n(broker, rid, 3)
    await broker.end(rid)
    assert len(await collect(broker.subscribe(rid, last_event_id="-1"))) == 3
    await asyncio.sleep(1.6)
    replay = broker.subscribe(rid, last_event_id="-1")
    reader = asyncio.ensure_future(collect(replay))
    await asyncio.sleep(0.2)
    await broker.end(rid)  # the stream is gone: the late subscriber gets nothing
    assert await reader == []


async def test_retained_events_are_capped_by_count(make_broker: BrokerFactory) -> None:
    broker = make_broker(shared=False, max_events=100)
    rid = run_id()
    ids = await publish_n(broker, rid, 1000)
    await broker.end(rid)
    events = await collect(broker.subscribe(rid, last_event_id="-1"))
    assert 100 <= len(events) < 1000
    assert [e.id for e in events] == ids[-len(events) :]


async def test_many_runs_leave_nothing_per_run_behind(make_broker: BrokerFactory) -> None:
    """The executor's pattern (publish, wait_control, cancel the wait, end) for hundreds of runs: once
    the retention window has passed, no per-run entry remains in either broker."""
    broker = make_broker(shared=False, retention_seconds=1)
    thread = run_id()
    for i in range(200):
        rid = run_id()
        await broker.publish(rid, "metadata", b"{}", thread_id=thread)
        control = asyncio.ensure_future(broker.wait_control(rid))
        await asyncio.sleep(0)
        subscription = broker.subscribe(rid, last_event_id="-1")
        await broker.publish(rid, "values", b"{}", thread_id=thread)
        if i % 20 == 0:  # some runs are cancelled, one control is sent after its run ended
            await broker.publish_control(rid, "interrupt")
            assert await asyncio.wait_for(control, 5) == "interrupt"
        control.cancel()
        await broker.end(rid)
        if i == 199:
            await broker.publish_control(rid, "interrupt")
        assert len(await collect(subscription)) == 2
    await asyncio.sleep(2.2)
    if isinstance(broker, InMemoryBroker):
        await broker.end(run_id())  # any call purges; this one leaves its own (ended) entry
        assert len(broker._runs) == 1 and len(broker._ended) == 1
        assert broker._threads == {} and broker._controls == {} and broker._control_waiters == {}
        assert len(broker._control_times) == 0
    else:
        assert isinstance(broker, RedisBroker)
        assert broker._control_waiters == {}
        client = aioredis.Redis.from_url(REDIS_URL)
        try:
            assert [key async for key in client.scan_iter(match=f"{broker.key_prefix}:*")] == []
        finally:
            await client.aclose()  # type: ignore[attr-defined]


async def test_an_idle_thread_stream_with_a_subscriber_keeps_delivering(make_broker: BrokerFactory) -> None:
    broker = make_broker(shared=False, retention_seconds=1)
    thread = run_id()
    first, second = run_id(), run_id()
    await broker.publish(first, "values", b'{"n":0}', thread_id=thread)
    await broker.end(first)
    subscription = broker.subscribe_thread(thread)
    await asyncio.sleep(1.3)
    await broker.end(run_id())  # purges what has expired
    reader = asyncio.ensure_future(anext(aiter(subscription)))
    await asyncio.sleep(0.1)
    await broker.publish(second, "values", b'{"n":1}', thread_id=thread)
    assert (await asyncio.wait_for(reader, 6)).data == b'{"n":1}'
