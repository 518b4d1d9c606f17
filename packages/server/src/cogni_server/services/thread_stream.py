"""Reading a thread's protocol event stream: the request's filter, where the replay starts, tenancy.

- ``since: N`` replays every retained event with ``seq > N``, then live events.
- Without ``since`` the replay starts at the first event of the earliest run still in flight: a
  client that (re)connects without a cursor sees the current run from its start, never an older
  run's terminal (which would end its projections early). When no run is in flight, the stream
  waits up to ``DECIDE_SECONDS`` for one to begin (the Python client opens its watcher on a known
  thread just before ``run.start``: it wants the new run, not the last one's terminal); if none does,
  it replays the thread's most recent run (a client that subscribed after its run already ended).
- A stream may be opened before its thread exists (clients mint thread ids and open streams before
  ``run.start`` creates the thread). Another tenant's thread answers NotFound at once; a thread that
  does not exist yet is checked again when its first event arrives, and the stream ends there if
  another tenant created it.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Mapping
from typing import Any

from cogni_server.errors import Invalid, NotFound
from cogni_server.services.context import ServerContext
from cogni_server.storage import thread_events
from cogni_server.streaming.thread_log import EventFilter, StoredEvent

CHANNELS = ("values", "updates", "messages", "tools", "lifecycle", "input", "checkpoints", "tasks", "custom")
_CHANNEL_SET = frozenset(CHANNELS)
_KEYS = frozenset({"channels", "namespaces", "depth", "since"})
DECIDE_SECONDS = 1.0
_ALLOWED = "values, updates, messages, tools, custom, lifecycle, input, checkpoints, tasks, or any `custom:<name>`"


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def parse_filter(body: Any, *, allow_since: bool = True) -> tuple[EventFilter, int | None]:
    """The subscription a stream request (or ``subscription.subscribe``) asks for; Invalid if malformed."""
    if not isinstance(body, Mapping):
        raise Invalid("the request body must be a JSON object with a channels array")
    unknown = sorted(set(body) - _KEYS if allow_since else set(body) - (_KEYS - {"since"}))
    if unknown:
        raise Invalid(f"unknown field(s) {', '.join(unknown)}: expected channels, namespaces, depth, since")
    channels = body.get("channels")
    if not isinstance(channels, list) or not channels:
        raise Invalid("channels is required and must be a non-empty array")
    bad = [str(c) for c in channels if not isinstance(c, str) or not _valid_channel(c)]
    if bad:
        raise Invalid(f"channels contains unsupported entries: {', '.join(bad)}. Allowed: {_ALLOWED}.")
    namespaces = body.get("namespaces")
    if namespaces is not None and (
        not isinstance(namespaces, list)
        or not all(isinstance(ns, list) and all(isinstance(seg, str) for seg in ns) for ns in namespaces)
    ):
        raise Invalid("namespaces must be an array of namespaces (arrays of strings)")
    depth = body.get("depth")
    if depth is not None and (not _is_int(depth) or depth < 0):
        raise Invalid("depth must be a non-negative integer")
    since = body.get("since")
    if since is not None and (not _is_int(since) or since < 0):
        raise Invalid("since must be a non-negative integer (the last seq the client saw)")
    flt = EventFilter(
        frozenset(channels),
        tuple(tuple(ns) for ns in namespaces) if namespaces else None,
        depth,
    )
    return flt, since


def _valid_channel(channel: str) -> bool:
    return channel in _CHANNEL_SET or (channel.startswith("custom:") and len(channel) > len("custom:"))


async def check_thread(ctx: ServerContext, tenant: str, thread_id: uuid.UUID) -> bool:
    """True: the tenant's thread; False: no such thread (yet); NotFound: another tenant's."""
    async with ctx.pool.connection() as conn:
        owner = await thread_events.owner_of(conn, thread_id)
    if owner is not None and owner != tenant:
        raise NotFound(f"thread {thread_id} not found")
    return owner is not None


async def replay_plan(ctx: ServerContext, thread_id: uuid.UUID, since: int | None) -> tuple[int, str | None]:
    """Where a stream starts: the seq it starts after and, when no run is in flight and no ``since``
    was given, the most recent run to replay unless a new run begins first (see the module docstring)."""
    if since is not None:
        return since, None
    tid = str(thread_id)
    high_water = await ctx.thread_log.high_water(tid)  # read first: anything newer is after it
    async with ctx.pool.connection() as conn:
        runs = await thread_events.inflight_runs(conn, thread_id)
        latest = None if runs else await thread_events.latest_run(conn, thread_id)
    if latest is not None:
        return high_water, str(latest["run_id"])
    starts = [await ctx.thread_log.run_start(tid, r["run_id"]) for r in runs]
    known = [s for s in starts if s is not None]
    return (min(known) - 1 if known else high_water), None


async def late_replay(ctx: ServerContext, thread_id: uuid.UUID, run_id: str, until: int) -> list[StoredEvent]:
    """The events of ``run_id`` up to ``until``, unless a run is in flight now (then nothing)."""
    async with ctx.pool.connection() as conn:
        if await thread_events.inflight_runs(conn, thread_id):
            return []
    start = await ctx.thread_log.run_start(str(thread_id), run_id)
    return [] if start is None else await ctx.thread_log.read_range(str(thread_id), start - 1, until)


async def open_events(
    ctx: ServerContext, tenant: str, thread_id: uuid.UUID, flt: EventFilter, since: int | None
) -> AsyncIterator[StoredEvent]:
    """The thread's events matching ``flt`` from the replay point on; NotFound for another tenant's."""
    owned = await check_thread(ctx, tenant, thread_id)
    after, undecided = await replay_plan(ctx, thread_id, since)
    source = ctx.thread_log.subscribe(str(thread_id), after)
    if undecided is not None:
        source = _unless_a_run_begins(ctx, thread_id, undecided, after, source)
    return _guarded(ctx, tenant, thread_id, source, flt, owned)


async def _unless_a_run_begins(
    ctx: ServerContext, thread_id: uuid.UUID, run_id: str, high_water: int, source: AsyncIterator[StoredEvent]
) -> AsyncIterator[StoredEvent]:
    """Live events; if none arrives within DECIDE_SECONDS and no run is in flight, first the last run."""
    queue: asyncio.Queue[StoredEvent | BaseException] = asyncio.Queue()

    async def pump() -> None:
        try:
            async for event in source:
                await queue.put(event)
        except BaseException as exc:  # handed to the reader
            await queue.put(exc)

    task = asyncio.ensure_future(pump())
    try:
        first: StoredEvent | BaseException | None = None
        with contextlib.suppress(TimeoutError):
            first = await asyncio.wait_for(queue.get(), DECIDE_SECONDS)
        if first is None:
            for event in await late_replay(ctx, thread_id, run_id, high_water):
                yield event
        while True:
            item = first if first is not None else await queue.get()
            first = None
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        task.cancel()
        with contextlib.suppress(BaseException):
            await task


async def _guarded(
    ctx: ServerContext,
    tenant: str,
    thread_id: uuid.UUID,
    source: AsyncIterator[StoredEvent],
    flt: EventFilter | None,
    owned: bool,
) -> AsyncIterator[StoredEvent]:
    try:
        async for event in source:
            if not owned:
                owned = await check_thread(ctx, tenant, thread_id)  # raises NotFound for another tenant
            if flt is None or flt.matches(event):
                yield event
    finally:
        aclose = getattr(source, "aclose", None)
        if aclose is not None:
            await aclose()


def guarded(
    ctx: ServerContext, tenant: str, thread_id: uuid.UUID, source: AsyncIterator[StoredEvent], owned: bool
) -> AsyncIterator[StoredEvent]:
    """Every event of ``source`` (no filter), with the same tenancy re-check (the WebSocket pump)."""
    return _guarded(ctx, tenant, thread_id, source, None, owned)
