"""What the shared Redis reader (``redis_reader``) keeps per subscription and per subscribed key."""

from __future__ import annotations

import asyncio
import time
from collections import deque

from cogni_server.streaming.redis_xread import Entry, bulk


def parse_id(entry_id: bytes | str) -> tuple[int, int]:
    text = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    millis, _, seq = text.partition("-")
    return int(millis), int(seq or 0)


class Subscription:
    """One subscriber's position, bounded queue and wake-up."""

    __slots__ = (
        "cursor",
        "cursor_bulk",
        "done",
        "error",
        "joined",
        "key",
        "paused",
        "queue",
        "resolved",
        "stop_field",
        "waiter",
    )

    def __init__(self, key: str, after: str | None, stop_field: bytes | None) -> None:
        self.key = key
        self.cursor = parse_id(after or "0-0")  # the last entry queued (or the start position)
        self.cursor_bulk = bulk(after or "0-0")  # the cursor as sent in XREAD
        self.resolved = after is not None  # False: "from now on", the key's top is not looked up yet
        self.stop_field = stop_field
        self.queue: deque[Entry] = deque()
        self.waiter: asyncio.Future[None] | None = None
        self.paused = False  # the queue is full: not read for until the subscriber catches up
        self.done = False  # the stop entry is queued
        self.error: BaseException | None = None
        self.joined = time.monotonic()

    @property
    def reading(self) -> bool:
        return self.resolved and not (self.paused or self.done or self.error is not None)

    def wake(self) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    def fail(self, error: BaseException) -> None:
        if self.error is None:
            self.error = error
            self.wake()


class KeyState:
    """A subscribed key: its subscriptions, its encoding, and whether the hot lane reads it."""

    __slots__ = ("active", "encoded", "hot", "subs")

    def __init__(self, key: str) -> None:
        self.subs: list[Subscription] = []
        self.encoded = bulk(key)
        self.hot = True
        self.active = time.monotonic()  # the last join, resume or delivery

    def lowest(self) -> Subscription | None:
        """The reading subscription furthest behind (the key's read starts at its position)."""
        lowest: Subscription | None = None
        for sub in self.subs:
            if sub.reading and (lowest is None or sub.cursor < lowest.cursor):
                lowest = sub
        return lowest
