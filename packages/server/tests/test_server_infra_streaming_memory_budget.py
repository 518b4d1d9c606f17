"""The in-memory broker and thread log keep what they retain within a byte budget (issue 12, soak).

Without it, ended runs' events (120 s) and thread logs (one hour) piled up in process memory under steady
traffic: 1.2 to 1.6 GiB after 30 minutes of the soak. Past the budget the least recently used streams
nobody reads live go first; a running run, a subscribed thread and a replay in progress are kept.
"""

from __future__ import annotations

import asyncio
import gc
import tracemalloc
import uuid

import orjson

from cogni_server.serde import dumps
from cogni_server.streaming import InMemoryBroker
from cogni_server.streaming.thread_log import PendingEvent, channel_of
from cogni_server.streaming.thread_log_memory import InMemoryThreadLog

from .streaming_helpers import collect, run_id, take

KIB = 1024
PAYLOAD = b'{"chunk":"' + b"x" * 1000 + b'"}'


async def run_of(broker: InMemoryBroker, events: int, *, thread_id: str | None = None, end: bool = True) -> str:
    rid = run_id()
    for _ in range(events):
        await broker.publish(rid, "messages", PAYLOAD, thread_id=thread_id)
    if end:
        await broker.end(rid)
    return rid


async def replay(broker: InMemoryBroker, rid: str) -> list[bytes]:
    """Every retained event of an ended run (an evicted one is an empty stream: ended again to stop)."""
    subscription = broker.subscribe(rid, last_event_id="-1")
    reader = asyncio.ensure_future(collect(subscription))
    await asyncio.sleep(0.05)
    await broker.end(rid)
    return [e.data for e in await reader]


def budget_broker(max_kib: int) -> InMemoryBroker:
    return InMemoryBroker(max_bytes=max_kib * KIB, min_retention_seconds=0)


async def test_ended_runs_beyond_the_budget_go_oldest_first_and_the_rest_replay_in_full() -> None:
    broker = budget_broker(256)
    runs = [await run_of(broker, 20) for _ in range(60)]  # ~1.4 MiB of events, 60 ended runs
    assert broker.retained_bytes <= 256 * KIB
    assert broker.evicted_streams > 0
    kept = [len(await replay(broker, rid)) for rid in runs]
    assert kept[-1] == 20 and kept[0] == 0
    first_kept = kept.index(20)
    assert kept[first_kept:] == [20] * (len(runs) - first_kept)  # what is kept is the newest, whole
    assert set(kept[:first_kept]) == {0}


async def test_a_running_run_and_a_replay_in_progress_are_never_evicted() -> None:
    broker = budget_broker(128)
    live = await run_of(broker, 30, end=False)
    ended = await run_of(broker, 30)
    reading = broker.subscribe(ended, last_event_id="-1")
    first = await take(reading, 1)
    for _ in range(40):  # 40 more ended runs push everything evictable out
        await run_of(broker, 10)
    rest = await collect(reading)
    assert len(first) + len(rest) == 30  # the replay that had started reads to the end
    assert await replay(broker, ended) == []  # a new reader finds it gone
    live_events = await take(broker.subscribe(live, last_event_id="-1"), 30)
    assert len(live_events) == 30


async def test_a_subscribed_thread_stream_is_kept_and_idle_ones_go() -> None:
    broker = budget_broker(128)
    watched, idle = str(uuid.uuid4()), str(uuid.uuid4())
    watcher = broker.subscribe_thread(watched, last_event_id="-1")
    await run_of(broker, 20, thread_id=watched)
    await run_of(broker, 20, thread_id=idle)
    for _ in range(40):
        await run_of(broker, 10)
    assert len(await take(watcher, 20)) == 20
    late = broker.subscribe_thread(idle, last_event_id="-1")
    await run_of(broker, 1, thread_id=idle)  # the idle thread's old events are gone: only the new one
    assert len(await take(late, 1)) == 1
    assert await _nothing_more(late)


async def _nothing_more(subscription: object) -> bool:
    try:
        await asyncio.wait_for(subscription.__anext__(), 0.3)  # type: ignore[attr-defined]
    except TimeoutError:
        return True
    return False


async def test_process_memory_stays_near_the_budget_under_a_flood() -> None:
    """50 MiB of events through a broker with a 4 MiB budget: traced memory stays within a few budgets."""
    broker = InMemoryBroker(max_bytes=4 * 1024 * KIB, min_retention_seconds=0)
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for i in range(2500):
            await run_of(broker, 20, thread_id=f"t{i % 50}")
        gc.collect()
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert broker.retained_bytes <= 4 * 1024 * KIB
    assert held < 12 * 1024 * KIB, f"{held / 1024 / 1024:.1f} MiB held"


async def test_orjson_events_hold_what_the_budget_counts() -> None:
    """Events as the executor publishes them (``serde.dumps``): orjson hands back its whole work buffer
    (4 KiB for a small event), so before the broker kept a right-sized copy a 4 MiB budget of small
    events held ~60 MiB; the soak's RSS grew ~3.5 MiB a minute with both budgets flat (issue 12)."""
    broker = InMemoryBroker(max_bytes=4 * 1024 * KIB, min_retention_seconds=0)
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for i in range(1000):
            rid = run_id()
            for step in range(20):  # small events, as a short run's values/updates/metadata are
                await broker.publish(rid, "values", dumps({"count": step, "run": i}), thread_id=f"t{i % 4}")
            await broker.end(rid)
        gc.collect()
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert broker.retained_bytes <= 4 * 1024 * KIB
    assert held < 1.2 * broker.retained_bytes, f"{held / 1024 / 1024:.1f} MiB held for {broker.retained_bytes} counted"


class Ceilings:
    """The durable seq ceiling per thread (Postgres in production)."""

    def __init__(self, start: int = 0) -> None:
        self.start = start
        self.ceilings: dict[str, int] = {}

    async def ceiling(self, thread_id: str) -> int | None:
        return self.ceilings.get(thread_id, self.start)

    async def reserve(self, thread_id: str, at_least: int, block: int) -> int | None:
        self.ceilings[thread_id] = max(self.ceilings.get(thread_id, self.start), at_least) + block
        return self.ceilings[thread_id]


def small_event(i: int) -> PendingEvent:
    body = orjson.dumps({"data": {"count": i}})
    return PendingEvent("values", "values", (), b'"method":"values","params":' + body + b"}")


async def thread_log_held(threads: int, runs_per_thread: int, events_per_run: int) -> tuple[int, int]:
    """(traced bytes, estimated bytes) of a thread log after that much traffic (no budget)."""
    log = InMemoryThreadLog(Ceilings(start=5000), max_events=10_000, ttl_seconds=3600, max_bytes=1 << 40)
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for t in range(threads):
            for r in range(runs_per_thread):
                events = [small_event(i) for i in range(events_per_run)]
                log.publish(f"thread-{t}", events, run_id=str(uuid.UUID(int=t << 64 | r)))
            await log.flush()
        gc.collect()
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    estimate = log.retained_bytes
    await log.close()
    return held, estimate


async def test_the_thread_log_estimate_holds_for_short_and_long_threads() -> None:
    """The budget counts what is really held, whatever the mix: under a fixed estimate, a mix moving from
    many one-run threads (overestimated 25% before) to a few long conversations (underestimated 23%)
    grew the real memory by half the budget (the soak's four long-lived threads, issue 12)."""
    for shape in ((2000, 1, 10), (4, 600, 10), (1000, 1, 30)):
        held, estimate = await thread_log_held(*shape)
        assert 0.8 < held / estimate < 1.15, f"{shape}: {held} held, {estimate} estimated"


def protocol_event(i: int) -> PendingEvent:
    body = orjson.dumps(
        {"method": "values", "params": {"namespace": [], "timestamp": 1, "data": {"i": i, "pad": "y" * 1000}}}
    )
    return PendingEvent("values", channel_of("values", None), (), body[1:])


async def test_thread_logs_beyond_the_budget_go_least_recently_used_first_and_keep_numbering() -> None:
    log = InMemoryThreadLog(Ceilings(), max_events=1000, ttl_seconds=3600, max_bytes=128 * KIB)
    watched = "watched"
    reader = log.subscribe(watched, 0)
    threads = [f"thread-{i}" for i in range(40)]
    for tid in [watched, *threads]:
        log.publish(tid, [protocol_event(i) for i in range(10)], run_id=f"run-{tid}")
        await log.flush()
    assert log.retained_bytes <= 128 * KIB and log.evicted_threads > 0
    assert len(await log.read_range(threads[-1], 0)) == 10  # the newest are whole
    assert await log.read_range(threads[0], 0) == []  # the oldest went
    seen = []
    async for item in reader:  # the subscribed thread kept everything
        seen.append(item.seq)
        if len(seen) == 10:
            break
    assert seen == list(range(1, 11))
    log.publish(threads[0], [protocol_event(99)], run_id="again")  # the evicted thread writes again
    await log.flush()
    again = await log.read_range(threads[0], 0)
    assert len(again) == 1 and again[0].seq > 10  # numbered above what it handed out before: never reused
    await log.close()
