"""Plain helpers shared by the stream-broker tests (fixtures live in this folder's conftest.py)."""

from __future__ import annotations

import asyncio
import os
import re
import uuid
from collections.abc import AsyncIterator, Callable

import redis.asyncio as aioredis

from cogni_server.streaming import StreamBroker, StreamEvent

REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
ID_PATTERN = re.compile(r"^\d+-\d+$")

BrokerFactory = Callable[..., StreamBroker]


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


def parsed_ids(ids: list[str]) -> list[tuple[int, int]]:
    return [(int(a), int(b)) for a, b in (i.split("-") for i in ids)]


async def delete_prefixed_keys(prefix: str) -> None:
    """Drop every Redis key a test wrote under its unique prefix."""
    client = aioredis.Redis.from_url(REDIS_URL)
    keys = [key async for key in client.scan_iter(match=f"{prefix}:*")]
    if keys:
        await client.delete(*keys)
    await client.aclose()  # type: ignore[attr-defined]
