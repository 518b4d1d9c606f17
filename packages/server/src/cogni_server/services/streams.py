"""Reading run and thread event streams: the broker subscription behind every SSE route, with the
checks a caller needs first (the run or thread is theirs, the resume id is well formed)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterable

from cogni_server.errors import Invalid
from cogni_server.services.context import ServerContext
from cogni_server.services.run_request import StreamModeName
from cogni_server.storage import threads as thread_repo
from cogni_server.streaming import StreamEvent

STREAM_MODES = frozenset(StreamModeName.__args__)  # type: ignore[attr-defined]
_ALWAYS = ("metadata", "error", "end")


def subscribe_run(ctx: ServerContext, run_id: str, last_event_id: str | None) -> AsyncIterator[StreamEvent]:
    """The run's events after ``last_event_id`` (``"-1"``: all retained, None: from now on)."""
    try:
        return ctx.broker.subscribe(run_id, last_event_id=last_event_id)
    except ValueError as exc:
        raise Invalid(f"invalid Last-Event-ID: {exc}") from None


def check_modes(modes: Iterable[str]) -> set[str]:
    """Stream modes a join may filter on; an unknown one is Invalid, naming it."""
    wanted = set(modes)
    unknown = sorted(wanted - STREAM_MODES)
    if unknown:
        raise Invalid(f"unknown stream_mode {unknown[0]!r}")
    return wanted


async def only_modes(source: AsyncIterator[StreamEvent], modes: set[str]) -> AsyncIterator[StreamEvent]:
    """The events of ``modes`` (namespaced names included), plus metadata, errors and the end."""
    if "messages-tuple" in modes:
        modes = modes | {"messages"}
    async for event in source:
        base = event.event.split("|", 1)[0].split("/", 1)[0]
        if base in modes or base in _ALWAYS:
            yield event


async def subscribe_thread(
    ctx: ServerContext, tenant: str, thread_id: uuid.UUID, last_event_id: str | None
) -> AsyncIterator[StreamEvent]:
    """Every run's events on one of the tenant's threads (``GET /threads/{id}/stream``)."""
    async with ctx.pool.connection() as conn:
        await thread_repo.get(conn, tenant, thread_id)
    try:
        return ctx.broker.subscribe_thread(str(thread_id), last_event_id=last_event_id or None)
    except ValueError as exc:
        raise Invalid(f"invalid Last-Event-ID: {exc}") from None
