"""The stream broker contract, run against both brokers (Redis: the real server on 6379): ordering,
ids, replay, live delivery across instances, thread streams; plus the SSE wire format."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from cogni_server.streaming import (
    HEARTBEAT,
    InMemoryBroker,
    RedisBroker,
    StreamBroker,
    StreamEvent,
    build_broker,
    encode_sse,
)

from .streaming_helpers import (
    ID_PATTERN,
    REDIS_URL,
    collect,
    payloads,
    publish_n,
    run_id,
    take,
)


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
    await broker.publish(second_run, "metadata", b'"busy"', thread_id=thread)
    await broker.publish(second_run, "values", b"2", thread_id=thread)
    events = await take(live, 3)
    assert [(e.event, e.data) for e in events] == [("values", b"1"), ("metadata", b'"busy"'), ("values", b"2")]
    # a reconnect after the first id resumes there
    again = await take(peer.subscribe_thread(thread, last_event_id=events[0].id), 2)
    assert [e.data for e in again] == [b'"busy"', b"2"]
    # the run streams stay separate
    assert payloads(await collect(broker.subscribe(first_run, last_event_id="-1"))) == [b"1"]
    await broker.end(second_run)


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


async def test_forget_deletes_the_retained_events_of_runs_and_threads(broker: StreamBroker) -> None:
    """A tenant purge forgets its runs and threads: nothing of them is replayed afterwards."""
    rid, tid = run_id(), str(uuid.uuid4())
    for i in range(3):
        await broker.publish(rid, "values", f'{{"old":{i}}}'.encode(), thread_id=tid)
    await broker.end(rid)
    await broker.forget(run_ids=[rid], thread_ids=[tid])
    await broker.publish(rid, "values", b'{"new":1}', thread_id=tid)
    await broker.end(rid)
    assert [e.data for e in await collect(broker.subscribe(rid, last_event_id="-1"), limit=2)] == [b'{"new":1}']
    thread_events = await take(broker.subscribe_thread(tid, last_event_id="-1"), 1)
    assert [e.data for e in thread_events] == [b'{"new":1}']
