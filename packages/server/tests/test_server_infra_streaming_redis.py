"""Redis write batching (RedisBroker only): per-run order in few round trips, ids above an existing
stream, flushing on end/close, and write errors surfacing to the publisher."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import redis.asyncio as aioredis

from cogni_server.streaming import (
    BrokerClosed,
    BrokerUnavailable,
    RedisBroker,
    redis_writer,
)
from testsupport import free_port

from .streaming_helpers import (
    REDIS_URL,
    collect,
    parsed_ids,
    payloads,
    publish_n,
    run_id,
    take,
)


async def test_concurrent_bursts_keep_per_run_order_in_few_round_trips(
    redis_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Five runs stream 400 events each at once: every run's stream (and the shared thread stream)
    holds its events in publish order under the ids publish() returned, in a handful of pipelines."""
    broker = RedisBroker.from_url(REDIS_URL, key_prefix=redis_prefix)
    reader = RedisBroker.from_url(REDIS_URL, key_prefix=redis_prefix)
    pipelines = 0
    real_execute = redis_writer.execute

    async def counting_execute(*args: Any, **kwargs: Any) -> Any:
        nonlocal pipelines
        pipelines += 1
        return await real_execute(*args, **kwargs)

    monkeypatch.setattr(redis_writer, "execute", counting_execute)
    thread, runs, per_run = run_id(), [run_id() for _ in range(5)], 400

    def body(rid: str, i: int) -> bytes:
        return b'{"r":%d,"i":%d}' % (runs.index(rid), i)

    async def burst(rid: str) -> list[str]:
        ids = []
        for i in range(per_run):
            ids.append(await broker.publish(rid, "messages", body(rid, i), thread_id=thread))
            if i % 50 == 0:
                await asyncio.sleep(0)  # interleave the runs
        await broker.end(rid)
        return ids

    try:
        all_ids = await asyncio.wait_for(asyncio.gather(*(burst(r) for r in runs)), 20)
        for rid, ids in zip(runs, all_ids, strict=True):
            assert parsed_ids(ids) == sorted(set(parsed_ids(ids))), "ids must strictly increase per run"
            events = await collect(reader.subscribe(rid, last_event_id="-1"))
            assert [e.id for e in events] == ids
            assert payloads(events) == [body(rid, i) for i in range(per_run)]
        mirrored = payloads(await take(reader.subscribe_thread(thread, last_event_id="-1"), len(runs) * per_run))
        for rid in runs:  # each run's events keep their order inside the shared thread stream too
            assert [d for d in mirrored if d.startswith(body(rid, 0)[:7])] == [body(rid, i) for i in range(per_run)]
        assert 0 < pipelines <= 60, f"{pipelines} pipelines for {len(runs) * per_run} events: not batched"
    finally:
        await broker.close()
        await reader.close()


async def test_a_lone_event_is_written_at_once(redis_prefix: str) -> None:
    broker = RedisBroker.from_url(REDIS_URL, key_prefix=redis_prefix)
    peer = RedisBroker.from_url(REDIS_URL, key_prefix=redis_prefix)
    rid = run_id()
    try:
        first = await broker.publish(rid, "metadata", b"{}")
        live = peer.subscribe(rid, last_event_id=first)
        second = await broker.publish(rid, "values", b'{"n":1}')  # no end(), no flush(): still delivered
        event = await asyncio.wait_for(anext(aiter(live)), 2)
        assert (event.id, event.data) == (second, b'{"n":1}')
    finally:
        await broker.close()
        await peer.close()


async def test_ids_stay_above_an_existing_stream_and_a_clock_going_back(
    redis_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A retried run whose stream already holds ids from a clock ahead of ours, then our clock jumping
    back: every id is still above the stream's top, so Redis accepts every write."""
    import cogni_server.streaming.redis_writer as writer_module

    broker = RedisBroker.from_url(REDIS_URL, key_prefix=redis_prefix)
    client = aioredis.Redis.from_url(REDIS_URL)
    rid = run_id()
    ahead = 9_000_000_000_000  # milliseconds: far in the future
    await client.xadd(broker.run_key(rid), {b"e": b"values", b"d": b'"old"', b"r": b"1"}, id=f"{ahead}-7")
    try:
        ids = await publish_n(broker, rid, 5)
        clock = iter([1_000.0 - i for i in range(100)])  # seconds, going backwards
        monkeypatch.setattr(writer_module.time, "time", lambda: next(clock))
        ids += await publish_n(broker, rid, 5, start=5)
        await broker.end(rid)
        parsed = parsed_ids(ids)
        assert parsed[0] > (ahead, 7) and parsed == sorted(set(parsed))
        events = await collect(broker.subscribe(rid, last_event_id=f"{ahead}-7"))
        assert [e.id for e in events] == ids
    finally:
        await broker.close()
        await client.aclose()  # type: ignore[attr-defined]


async def test_end_and_close_write_everything_published_before(redis_prefix: str) -> None:
    broker = RedisBroker.from_url(REDIS_URL, key_prefix=redis_prefix)
    reader = RedisBroker.from_url(REDIS_URL, key_prefix=redis_prefix)
    client = aioredis.Redis.from_url(REDIS_URL)
    ended, closed = run_id(), run_id()
    try:
        live = reader.subscribe(ended, last_event_id="-1")
        reading = asyncio.ensure_future(collect(live, limit=10))
        await publish_n(broker, ended, 300)
        await broker.end(ended)  # returns only once all 300 and the end marker are in Redis
        assert await client.xlen(broker.run_key(ended)) == 301
        assert len(await asyncio.wait_for(reading, 5)) == 300
        await publish_n(broker, closed, 300)
        await broker.close()
        assert await client.xlen(broker.run_key(closed)) == 300
        with pytest.raises(BrokerClosed):
            await broker.publish(closed, "values", b"{}")
    finally:
        await broker.close()
        await reader.close()
        await client.aclose()  # type: ignore[attr-defined]


async def test_a_failed_write_surfaces_to_the_publisher(redis_prefix: str) -> None:
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import ResponseError

    broker = RedisBroker.from_url(REDIS_URL, key_prefix=redis_prefix)
    client = aioredis.Redis.from_url(REDIS_URL)
    rid, other = run_id(), run_id()
    try:
        await broker.publish(rid, "values", b"1")
        await broker.publish(other, "values", b"1")
        # the run's stream key is clobbered: the next (buffered) write of that run fails in Redis
        await client.delete(broker.run_key(rid))
        await client.set(broker.run_key(rid), b"not a stream")
        await broker.publish(rid, "values", b"2")  # buffered: returns its id at once
        await broker.publish(other, "values", b"2")  # same batch, another run: unaffected
        await broker.flush()
        with pytest.raises(ResponseError, match="WRONGTYPE"):
            await broker.publish(rid, "values", b"3")
        with pytest.raises(ResponseError, match="WRONGTYPE"):
            await broker.end(rid)  # the end marker cannot be written either
        await client.delete(broker.run_key(rid))  # repaired: the run's next event re-learns the stream's top
        assert (await broker.publish(rid, "values", b"4")) == (await client.xrange(broker.run_key(rid)))[0][0].decode()
        await broker.end(other)
        assert payloads(await collect(broker.subscribe(other, last_event_id="-1"))) == [b"1", b"2"]
        await client.set(broker.thread_key("t"), b"not a stream")
        # a buffered event whose thread mirror fails, then end() of its run: end() raises it
        third = run_id()
        await broker.publish(third, "values", b"1")
        await broker.publish(third, "values", b"2", thread_id="t")
        with pytest.raises(ResponseError, match="WRONGTYPE"):
            await broker.end(third)
    finally:
        await broker.close()
        await client.aclose()  # type: ignore[attr-defined]
    # an unreachable Redis only delays events up to the outage limit, then the publisher fails
    unreachable = RedisBroker.from_url(
        f"redis://127.0.0.1:{free_port()}/0", key_prefix=redis_prefix, outage_seconds=1.0
    )
    try:
        with pytest.raises(BrokerUnavailable, match="COGNI_BROKER_OUTAGE_SECONDS") as info:
            await asyncio.wait_for(unreachable.publish(run_id(), "values", b"{}"), 10)
        assert isinstance(info.value.__cause__, RedisConnectionError)
    finally:
        await unreachable.close()


async def test_hundreds_of_idle_subscribers_all_stay_open(redis_prefix: str) -> None:
    """300 subscribers wait at once (once, each held a connection for its XREAD BLOCK): none fails
    with 'Too many connections' (redis-py's default pool stops at 100) or gives up as an outage after
    ``outage_seconds`` (2 s here), and each gets its run's event."""
    broker = RedisBroker.from_url(REDIS_URL, key_prefix=redis_prefix, outage_seconds=2.0)
    runs = [run_id() for _ in range(300)]

    async def first_event(rid: str) -> bytes:
        async for event in broker.subscribe(rid, last_event_id="-1"):
            return event.data
        raise AssertionError(f"stream {rid} ended without an event")

    try:
        waiting = [asyncio.create_task(first_event(rid)) for rid in runs]
        await asyncio.sleep(3.0)  # every subscriber is waiting, longer than the outage limit
        assert not [t for t in waiting if t.done()], [t.exception() for t in waiting if t.done()]
        for i, rid in enumerate(runs):
            await broker.publish(rid, "values", b'{"i":%d}' % i)
        got = await asyncio.wait_for(asyncio.gather(*waiting), 30)
        assert got == [b'{"i":%d}' % i for i in range(len(runs))]
    finally:
        await broker.close()
