"""The thread event log, both implementations against the same contract: numbering from a durable
ceiling (never reused, even after the log lost everything), stored bytes replayed as stored,
begin/end/defer ordering, filters, retention, forget."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable

import orjson
import pytest

from cogni_server.streaming.thread_log import SEQ_BLOCK, EventFilter, PendingEvent, StoredEvent, ThreadLog, channel_of
from cogni_server.streaming.thread_log_memory import InMemoryThreadLog
from cogni_server.streaming.thread_log_redis import RedisThreadLog

from .streaming_helpers import REDIS_URL, delete_prefixed_keys

pytestmark = pytest.mark.integration


class FakeStore:
    """The Postgres ceiling: a dict; threads not in ``known`` do not exist."""

    def __init__(self) -> None:
        self.ceilings: dict[str, int] = {}
        self.calls: list[str] = []

    async def ceiling(self, thread_id: str) -> int | None:
        self.calls.append("ceiling")
        return self.ceilings.get(thread_id)

    async def reserve(self, thread_id: str, at_least: int, block: int) -> int | None:
        self.calls.append("reserve")
        if thread_id not in self.ceilings:
            return None
        self.ceilings[thread_id] = max(self.ceilings[thread_id], at_least) + block
        return self.ceilings[thread_id]


LogFactory = Callable[..., ThreadLog]


@pytest.fixture(params=["memory", "redis"])
async def make_log(request: pytest.FixtureRequest) -> AsyncIterator[LogFactory]:
    prefix = f"cogni_test_tl_{uuid.uuid4().hex[:10]}"
    made: list[ThreadLog] = []

    def factory(store: FakeStore, **kwargs: object) -> ThreadLog:
        options: dict = {"max_events": 50, "ttl_seconds": 60.0, **kwargs}
        if request.param == "memory":
            log: ThreadLog = InMemoryThreadLog(store, **options)
        else:
            log = RedisThreadLog.from_url(REDIS_URL, store, key_prefix=prefix, block_ms=200, **options)
        made.append(log)
        return log

    yield factory
    for log in made:
        await log.close()
    if request.param == "redis":
        await delete_prefixed_keys(prefix)


def event(method: str = "values", data: object = None, ns: tuple[str, ...] = ()) -> PendingEvent:
    body = orjson.dumps({"method": method, "params": {"namespace": list(ns), "timestamp": 1, "data": data}})
    return PendingEvent(method, channel_of(method, data), ns, body[1:])


async def take(source: AsyncIterator[StoredEvent], n: int) -> list[StoredEvent]:
    out: list[StoredEvent] = []

    async def run() -> None:
        async for item in source:
            out.append(item)
            if len(out) == n:
                return

    await asyncio.wait_for(run(), 5)
    return out


def thread_with(store: FakeStore, ceiling: int = 0) -> str:
    tid = str(uuid.uuid4())
    store.ceilings[tid] = ceiling
    return tid


async def test_numbers_envelope_and_replay(make_log: LogFactory) -> None:
    store = FakeStore()
    log = make_log(store)
    tid = thread_with(store)
    log.publish(tid, [event(data={"n": 1}), event("custom", {"name": "x", "payload": 1})], run_id="r1", mode="begin")
    log.publish(tid, [event(data={"n": 2})], run_id="r1", mode="end")
    await log.flush()
    stored = await log.read_range(tid, 0)
    assert [e.seq for e in stored] == [1, 2, 3] and await log.high_water(tid) == 3
    first = orjson.loads(stored[0].data)
    assert first == {
        "type": "event",
        "event_id": "1",
        "seq": 1,
        "method": "values",
        "params": {"namespace": [], "timestamp": 1, "data": {"n": 1}},
    }
    assert stored[1].channel == "custom:x"
    assert await take(log.subscribe(tid, 1), 2) == stored[1:]
    assert await log.run_start(tid, "r1") == 1 and await log.active_run(tid) is None
    assert store.calls.count("reserve") == 1 and store.ceilings[tid] >= SEQ_BLOCK  # one block reserved


async def test_live_subscribers_see_new_events_in_order(make_log: LogFactory) -> None:
    store = FakeStore()
    log = make_log(store)
    tid = thread_with(store)
    reader = asyncio.ensure_future(take(log.subscribe(tid, 0), 5))
    await asyncio.sleep(0.05)
    for i in range(5):
        log.publish(tid, [event(data=i)])
    got = await reader
    assert [orjson.loads(e.data)["params"]["data"] for e in got] == [0, 1, 2, 3, 4]


async def test_a_log_that_lost_everything_continues_above_the_ceiling(make_log: LogFactory) -> None:
    store = FakeStore()
    tid = thread_with(store)
    first = make_log(store)
    first.publish(tid, [event(data=i) for i in range(3)])
    await first.flush()
    await first.forget(tid)  # as if Redis (or every instance) lost the log
    again = make_log(store)
    again.publish(tid, [event(data="after")])
    await again.flush()
    (stored,) = await again.read_range(tid, 0)
    assert stored.seq > 3 and stored.seq > SEQ_BLOCK - 1  # never a number handed out before


async def test_deferred_events_wait_for_the_active_run(make_log: LogFactory) -> None:
    store = FakeStore()
    log = make_log(store, hold_seconds=0.2)
    tid = thread_with(store)
    log.publish(tid, [event("lifecycle", {"event": "running"})], run_id="a", mode="begin")
    log.publish(tid, [event("lifecycle", {"event": "failed", "who": "b"})], run_id="b", mode="defer")
    log.publish(tid, [event(data="a-step")], run_id="a")
    await log.flush()
    assert len(await log.read_range(tid, 0)) == 2 and await log.active_run(tid) == "a"
    log.publish(tid, [event("lifecycle", {"event": "completed"})], run_id="a", mode="end")
    await log.flush()
    datas = [orjson.loads(e.data)["params"]["data"] for e in await log.read_range(tid, 0)]
    assert datas == [{"event": "running"}, "a-step", {"event": "completed"}, {"event": "failed", "who": "b"}]
    assert await log.run_start(tid, "b") == 4
    # nothing active: a deferred event goes out at once; a run that never ended is drained at the next begin
    log.publish(tid, [event(data="idle")], run_id="c", mode="defer")
    log.publish(tid, [event(data="d-start")], run_id="d", mode="begin")
    log.publish(tid, [event(data="held")], run_id="e", mode="defer")
    log.publish(tid, [event(data="f-start")], run_id="f", mode="begin")
    await log.flush()
    tail = [orjson.loads(e.data)["params"]["data"] for e in await log.read_range(tid, 4)]
    assert tail == ["idle", "d-start", "held", "f-start"]


async def test_events_of_a_deleted_thread_are_dropped(make_log: LogFactory) -> None:
    store = FakeStore()
    log = make_log(store)
    log.publish("no-such-thread", [event(data=1)])
    await log.flush()
    assert await log.read_range("no-such-thread", 0) == []


async def test_retention_keeps_the_newest(make_log: LogFactory) -> None:
    store = FakeStore()
    log = make_log(store, max_events=100)
    tid = thread_with(store)
    for i in range(400):
        log.publish(tid, [event(data=i)])
    await log.flush()
    kept = await log.read_range(tid, 0)
    assert kept[-1].seq == 400 and 100 <= len(kept) < 400  # Redis trims approximately
    assert [e.seq for e in kept] == list(range(kept[0].seq, 401))


def test_filters() -> None:
    def stored(method: str, data: object = None, ns: tuple[str, ...] = ()) -> StoredEvent:
        return StoredEvent(1, method, channel_of(method, data), ns, b"")

    custom = EventFilter(frozenset({"custom"}))
    named = EventFilter(frozenset({"custom:myext"}))
    assert custom.matches(stored("custom", {"name": "myext"})) and custom.matches(stored("custom", "plain"))
    assert named.matches(stored("custom", {"name": "myext"})) and not named.matches(stored("custom", "plain"))
    assert EventFilter(frozenset({"input"})).matches(stored("input.requested"))
    child = EventFilter(frozenset({"values"}), (("child",),))
    assert child.matches(stored("values", ns=("child:1",))) and not child.matches(stored("values"))
    assert not EventFilter(frozenset({"values"}), (("child:2",),)).matches(stored("values", ns=("child:1",)))
    root = EventFilter(frozenset({"values"}), ((),), 0)
    assert root.matches(stored("values")) and not root.matches(stored("values", ns=("child:1",)))
    assert EventFilter(frozenset({"values"}), None, 0).matches(stored("values", ns=("a:1", "b:2")))


async def test_redis_reloads_its_script(make_log: LogFactory) -> None:
    store = FakeStore()
    log = make_log(store)
    tid = thread_with(store)
    log.publish(tid, [event(data=1)])
    await log.flush()
    if isinstance(log, RedisThreadLog):
        log._sha = "0" * 40  # as after a Redis restart: the server no longer knows the script
    log.publish(tid, [event(data=2)])
    await log.flush()
    assert [e.seq for e in await log.read_range(tid, 0)] == [1, 2]


async def test_a_run_begins_after_the_previous_runs_end(make_log: LogFactory) -> None:
    """A run of the thread claimed elsewhere may begin before the previous run's terminal is written:
    its events wait (briefly) so the runs stay contiguous; a run that never ends stops holding."""
    store = FakeStore()
    log = make_log(store, hold_seconds=1.0)
    tid = thread_with(store)
    log.publish(tid, [event("lifecycle", {"event": "running", "run": "a"})], run_id="a", mode="begin")
    await log.flush()
    log.publish(tid, [event("lifecycle", {"event": "running", "run": "b"})], run_id="b", mode="begin")
    log.publish(tid, [event(data="b-step")], run_id="b")
    other = thread_with(store)
    log.publish(other, [event(data="elsewhere")])  # other threads are not held up
    await asyncio.sleep(0.2)
    assert [e.seq for e in await log.read_range(other, 0)] == [1]
    assert len(await log.read_range(tid, 0)) == 1
    log.publish(tid, [event("lifecycle", {"event": "completed", "run": "a"})], run_id="a", mode="end")
    await log.flush()
    await asyncio.sleep(0.1)
    datas = [orjson.loads(e.data)["params"]["data"] for e in await log.read_range(tid, 0)]
    assert datas == [
        {"event": "running", "run": "a"},
        {"event": "completed", "run": "a"},
        {"event": "running", "run": "b"},
        "b-step",
    ]
    # b never ends (its process died): c waits at most the hold time, then begins
    log.publish(tid, [event("lifecycle", {"event": "running", "run": "c"})], run_id="c", mode="begin")
    await asyncio.sleep(1.5)
    assert orjson.loads((await log.read_range(tid, 0))[-1].data)["params"]["data"] == {"event": "running", "run": "c"}
