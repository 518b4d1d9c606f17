"""The stream broker contract, run against both brokers (Redis: the real server on 6379).

For Redis, ``peer`` is a second broker instance on the same key prefix (another server process in
production), so every control, wake-up and stream test also proves cross-instance delivery.
"""

from __future__ import annotations

import asyncio
import os
import re
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import redis.asyncio as aioredis

from cogni_server.streaming import (
    HEARTBEAT,
    BrokerClosed,
    InMemoryBroker,
    RedisBroker,
    StreamBroker,
    StreamEvent,
    build_broker,
    encode_sse,
)
from testsupport import free_port

REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
ID_PATTERN = re.compile(r"^\d+-\d+$")

BrokerFactory = Callable[..., StreamBroker]


@pytest.fixture(params=["memory", "redis"])
async def make_broker(request: pytest.FixtureRequest) -> AsyncIterator[BrokerFactory]:
    """Factory for brokers of the parametrised kind; Redis ones share one unique key prefix."""
    prefix = f"cogni_test_{uuid.uuid4().hex[:12]}"
    made: list[StreamBroker] = []
    memory: dict[str, InMemoryBroker] = {}

    def factory(*, shared: bool = True, **kwargs: Any) -> StreamBroker:
        if request.param == "memory":
            if shared and "one" in memory:
                return memory["one"]
            broker: StreamBroker = InMemoryBroker(**kwargs)
            memory.setdefault("one", broker)  # type: ignore[arg-type]
        else:
            broker = RedisBroker.from_url(REDIS_URL, key_prefix=prefix, **kwargs)
        made.append(broker)
        return broker

    try:
        yield factory
    finally:
        for broker in made:
            await broker.close()
        if request.param == "redis":
            client = aioredis.Redis.from_url(REDIS_URL)
            keys = [key async for key in client.scan_iter(match=f"{prefix}:*")]
            if keys:
                await client.delete(*keys)
            await client.aclose()  # type: ignore[attr-defined]


@pytest.fixture
def broker(make_broker: BrokerFactory) -> StreamBroker:
    return make_broker()


@pytest.fixture
def peer(make_broker: BrokerFactory) -> StreamBroker:
    """Another instance for Redis (a second process in production); the same one in memory."""
    return make_broker(shared=True)


async def collect(events: AsyncIterator[StreamEvent], limit: float = 5.0) -> list[StreamEvent]:
    async def drain() -> list[StreamEvent]:
        return [event async for event in events]

    return await asyncio.wait_for(drain(), limit)


async def take(events: AsyncIterator[StreamEvent], n: int, limit: float = 5.0) -> list[StreamEvent]:
    out: list[StreamEvent] = []

    async def run() -> None:
        async for event in events:
            out.append(event)
            if len(out) == n:
                return

    await asyncio.wait_for(run(), limit)
    return out


def run_id() -> str:
    return str(uuid.uuid4())


def payloads(events: list[StreamEvent]) -> list[bytes]:
    return [e.data for e in events]


async def publish_n(broker: StreamBroker, rid: str, n: int, start: int = 0) -> list[str]:
    return [await broker.publish(rid, "values", b'{"i":%d}' % i) for i in range(start, start + n)]


async def test_events_arrive_in_order_with_monotonic_redis_style_ids(broker: StreamBroker) -> None:
    rid = run_id()
    ids = await publish_n(broker, rid, 20)
    await broker.end(rid)
    events = await collect(broker.subscribe(rid, last_event_id="-1"))
    assert [e.id for e in events] == ids
    assert all(ID_PATTERN.match(i) for i in ids)
    parsed = [tuple(int(p) for p in i.split("-")) for i in ids]
    assert parsed == sorted(parsed) and len(set(parsed)) == len(parsed)
    assert payloads(events) == [b'{"i":%d}' % i for i in range(20)]
    assert {e.event for e in events} == {"values"}


async def test_replay_after_an_id_is_strictly_after_it(broker: StreamBroker) -> None:
    rid = run_id()
    ids = await publish_n(broker, rid, 10)
    await broker.end(rid)
    events = await collect(broker.subscribe(rid, last_event_id=ids[3]))
    assert [e.id for e in events] == ids[4:]


async def test_subscriber_without_last_id_sees_only_new_events(broker: StreamBroker) -> None:
    rid = run_id()
    await publish_n(broker, rid, 3)
    live = broker.subscribe(rid)
    first = asyncio.ensure_future(live.__anext__())
    await asyncio.sleep(0.2)  # let a lazy subscriber (Redis) take its position
    await publish_n(broker, rid, 2, start=3)
    await broker.end(rid)
    event = await asyncio.wait_for(first, 5)
    rest = await collect(live)
    assert payloads([event, *rest]) == [b'{"i":3}', b'{"i":4}']


async def test_end_finishes_live_subscribers_across_instances(broker: StreamBroker, peer: StreamBroker) -> None:
    rid = run_id()
    subscription = peer.subscribe(rid, last_event_id="-1")
    reader = asyncio.ensure_future(collect(subscription, limit=10))
    await asyncio.sleep(0.1)
    await broker.publish(rid, "metadata", b'{"run_id":"x"}')
    await broker.publish(rid, "values", b"{}")
    await broker.end(rid)
    events = await asyncio.wait_for(reader, 5)
    assert [e.event for e in events] == ["metadata", "values"]


async def test_subscribing_after_end_replays_retained_events_then_stops(broker: StreamBroker) -> None:
    rid = run_id()
    await publish_n(broker, rid, 4)
    await broker.end(rid)
    assert len(await collect(broker.subscribe(rid, last_event_id="-1"), limit=2)) == 4
    assert await collect(broker.subscribe(rid), limit=2) == []


async def test_concurrent_publish_and_subscribe_never_drops_an_event(broker: StreamBroker, peer: StreamBroker) -> None:
    """Subscribers join at random moments while events flow; each sees a gap-free sequence."""
    rid = run_id()
    total = 300
    published: list[str] = []

    async def publisher() -> None:
        for i in range(total):
            published.append(await broker.publish(rid, "values", b'{"i":%d}' % i))
            if i % 10 == 0:
                await asyncio.sleep(0.001)
        await broker.end(rid)

    async def subscriber(delay: float, from_start: bool) -> tuple[str | None, list[StreamEvent]]:
        await asyncio.sleep(delay)
        last = None if from_start or not published else published[-1]
        events = await collect(peer.subscribe(rid, last_event_id=last or "-1"), limit=20)
        return last, events

    subscribers = [subscriber(d / 200, d % 2 == 0) for d in range(10)]
    publishing = asyncio.ensure_future(publisher())
    results = await asyncio.gather(*subscribers)
    await publishing
    for last, events in results:
        numbers = [int(e.data[5:-1]) for e in events]
        start = 0 if last is None else published.index(last) + 1
        assert numbers == list(range(start, total)), f"gap or duplicate after {last}"


async def test_non_resumable_flag_travels_with_the_event(broker: StreamBroker) -> None:
    rid = run_id()
    await broker.publish(rid, "metadata", b"{}", resumable=False)
    await broker.publish(rid, "values", b"{}")
    await broker.end(rid)
    events = await collect(broker.subscribe(rid, last_event_id="-1"))
    assert [e.resumable for e in events] == [False, True]


async def test_bad_last_event_id_fails_at_subscribe(broker: StreamBroker) -> None:
    with pytest.raises(ValueError, match="invalid stream event id"):
        broker.subscribe(run_id(), last_event_id="not-an-id")


async def test_thread_stream_joins_all_runs_of_the_thread(broker: StreamBroker, peer: StreamBroker) -> None:
    thread = run_id()
    live = peer.subscribe_thread(thread, last_event_id="-1")
    first_run, second_run = run_id(), run_id()
    await broker.publish(first_run, "values", b"1", thread_id=thread)
    await broker.end(first_run)
    await broker.publish_thread_event(thread, "status", b'"busy"')
    await broker.publish(second_run, "values", b"2", thread_id=thread)
    events = await take(live, 3)
    assert [(e.event, e.data) for e in events] == [("values", b"1"), ("status", b'"busy"'), ("values", b"2")]
    # a reconnect after the first id resumes there
    again = await take(peer.subscribe_thread(thread, last_event_id=events[0].id), 2)
    assert [e.data for e in again] == [b'"busy"', b"2"]
    # the run streams stay separate
    assert payloads(await collect(broker.subscribe(first_run, last_event_id="-1"))) == [b"1"]


async def test_control_reaches_a_waiting_worker(broker: StreamBroker, peer: StreamBroker) -> None:
    rid = run_id()
    waiter = asyncio.ensure_future(peer.wait_control(rid))
    await asyncio.sleep(0.2)
    assert not waiter.done()
    await broker.publish_control(rid, "rollback")
    assert await asyncio.wait_for(waiter, 3) == "rollback"


async def test_control_sent_before_the_worker_waits_is_not_lost(broker: StreamBroker, peer: StreamBroker) -> None:
    rid = run_id()
    await broker.publish_control(rid, "interrupt")
    assert await asyncio.wait_for(peer.wait_control(rid), 3) == "interrupt"
    other = asyncio.ensure_future(peer.wait_control(run_id()))
    await asyncio.sleep(0.2)
    assert not other.done(), "a control message leaked to another run"
    other.cancel()


async def test_abandoned_control_waits_leave_nothing_behind(broker: StreamBroker) -> None:
    """Every run waits for a control message and cancels the wait at its end: that must not leak."""
    for _ in range(50):
        waiter = asyncio.ensure_future(broker.wait_control(run_id()))
        await asyncio.sleep(0)
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
    await asyncio.sleep(0.05)
    assert broker._control_waiters == {}  # type: ignore[attr-defined]


async def test_close_releases_control_waiters(make_broker: BrokerFactory) -> None:
    broker = make_broker(shared=False)
    waiter = asyncio.ensure_future(broker.wait_control(run_id()))
    await asyncio.sleep(0.2)
    await broker.close()
    with pytest.raises(BrokerClosed):
        await asyncio.wait_for(waiter, 5)


async def test_unknown_control_action_is_refused(broker: StreamBroker) -> None:
    with pytest.raises(ValueError, match="unknown control action"):
        await broker.publish_control(run_id(), "explode")


async def test_run_pending_wakeups(broker: StreamBroker, peer: StreamBroker) -> None:
    assert await peer.wait_run_pending(0.2) is False
    waiters = [asyncio.ensure_future(peer.wait_run_pending(5)) for _ in range(3)]
    await asyncio.sleep(0.2)
    started = asyncio.get_running_loop().time()
    await broker.notify_run_pending()
    assert await asyncio.wait_for(asyncio.gather(*waiters), 5) == [True, True, True]
    assert asyncio.get_running_loop().time() - started < 1.0
    # a notification nobody was waiting for is kept for the next wait (no lost wake-up)
    await broker.notify_run_pending()
    await asyncio.sleep(0.2)
    assert await peer.wait_run_pending(0.5) is True


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


async def test_build_broker_picks_by_url() -> None:
    memory = build_broker(None)
    assert isinstance(memory, InMemoryBroker)
    remote = build_broker(REDIS_URL, key_prefix=f"cogni_test_{uuid.uuid4().hex[:8]}")
    assert isinstance(remote, RedisBroker)
    await memory.close()
    await remote.close()


def test_sse_frames_match_the_reference_wire_format() -> None:
    assert encode_sse("values", b'{"a":1}', "1700000000000-0") == (
        b'event: values\r\ndata: {"a":1}\r\nid: 1700000000000-0\r\n\r\n'
    )
    assert encode_sse("metadata", b"{}", None) == b"event: metadata\r\ndata: {}\r\n\r\n"
    assert encode_sse("custom", b"line1\nline2", None) == (b"event: custom\r\ndata: line1\r\ndata: line2\r\n\r\n")
    assert HEARTBEAT == b": heartbeat\r\n\r\n"


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
    await broker.publish_thread_event(thread, "values", b'{"n":0}')
    subscription = broker.subscribe_thread(thread)
    await asyncio.sleep(1.3)
    await broker.end(run_id())  # purges what has expired
    reader = asyncio.ensure_future(anext(aiter(subscription)))
    await asyncio.sleep(0.1)
    await broker.publish_thread_event(thread, "values", b'{"n":1}')
    assert (await asyncio.wait_for(reader, 6)).data == b'{"n":1}'


# -- Redis write batching (RedisBroker only) ---------------------------------------------------


@pytest.fixture
async def redis_prefix() -> AsyncIterator[str]:
    prefix = f"cogni_test_{uuid.uuid4().hex[:12]}"
    try:
        yield prefix
    finally:
        client = aioredis.Redis.from_url(REDIS_URL)
        keys = [key async for key in client.scan_iter(match=f"{prefix}:*")]
        if keys:
            await client.delete(*keys)
        await client.aclose()  # type: ignore[attr-defined]


def parsed_ids(ids: list[str]) -> list[tuple[int, int]]:
    return [(int(a), int(b)) for a, b in (i.split("-") for i in ids)]


async def test_concurrent_bursts_keep_per_run_order_in_few_round_trips(redis_prefix: str) -> None:
    """Five runs stream 400 events each at once: every run's stream (and the shared thread stream)
    holds its events in publish order under the ids publish() returned, in a handful of pipelines."""
    broker = RedisBroker.from_url(REDIS_URL, key_prefix=redis_prefix)
    reader = RedisBroker.from_url(REDIS_URL, key_prefix=redis_prefix)
    pipelines = 0
    real_pipeline = broker._writer._redis.pipeline  # type: ignore[attr-defined]

    def counting_pipeline(*args: Any, **kwargs: Any) -> Any:
        nonlocal pipelines
        pipelines += 1
        return real_pipeline(*args, **kwargs)

    broker._writer._redis.pipeline = counting_pipeline  # type: ignore[attr-defined]
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
        assert pipelines <= 60, f"{pipelines} pipelines for {len(runs) * per_run} events: not batched"
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
        with pytest.raises(ResponseError, match="WRONGTYPE"):
            await broker.publish_thread_event("t", "status", b"{}")
        # a buffered event whose thread mirror fails, then end() of its run: end() raises it
        third = run_id()
        await broker.publish(third, "values", b"1")
        await broker.publish(third, "values", b"2", thread_id="t")
        with pytest.raises(ResponseError, match="WRONGTYPE"):
            await broker.end(third)
    finally:
        await broker.close()
        await client.aclose()  # type: ignore[attr-defined]
    unreachable = RedisBroker.from_url(f"redis://127.0.0.1:{free_port()}/0", key_prefix=redis_prefix)
    try:
        with pytest.raises(RedisConnectionError):
            await asyncio.wait_for(unreachable.publish(run_id(), "values", b"{}"), 10)
    finally:
        await unreachable.close()
