"""A Redis database index of its own for a peer that needs Redis (never index 0, never FLUSHALL).

The machine's Redis (127.0.0.1:6379, override with `BENCH_REDIS_URL`) is shared, so the bench takes
an index that is empty right now, marks it with one key while the peer uses it, and flushes only
that index afterwards.
"""

from __future__ import annotations

import os
import random
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit, urlunsplit

import redis

BASE_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379")
CLAIM_KEY = "cogni-bench:claimed"
FIRST_INDEX = 1  # index 0 is everybody's default: never used by the bench


def redis_url(index: int, base: str = BASE_URL) -> str:
    """`base` with its database index (the URL path) replaced by `index`."""
    parts = urlsplit(base)
    return urlunsplit((parts.scheme, parts.netloc, f"/{index}", parts.query, ""))


def pick_empty_index(client: redis.Redis, candidates: list[int]) -> int:
    """The first index in `candidates` that holds no key; claims it atomically with CLAIM_KEY."""
    for index in candidates:
        client.execute_command("SELECT", index)
        if client.dbsize() == 0 and client.set(CLAIM_KEY, str(os.getpid()), nx=True):
            return index
    raise RuntimeError(f"no empty Redis database among {candidates} on {BASE_URL}: free one or set BENCH_REDIS_URL")


@contextmanager
def fresh_redis_database() -> Iterator[str]:
    """Yield the URL of an empty Redis database index (1..15, random order); FLUSHDB it afterwards."""
    probe = redis.Redis.from_url(redis_url(0), single_connection_client=True)
    try:
        databases = int(probe.config_get("databases").get("databases", 16))
    except redis.RedisError:
        databases = 16
    candidates = list(range(FIRST_INDEX, databases))
    random.shuffle(candidates)
    try:
        index = pick_empty_index(probe, candidates)
    finally:
        probe.close()
    try:
        yield redis_url(index)
    finally:
        with redis.Redis.from_url(redis_url(index)) as client:
            client.flushdb()


def connections_on(url: str) -> int | None:
    """Client connections Redis holds on `url`'s database index (`CLIENT LIST`), this probe excluded;
    None when Redis does not answer."""
    index = int(urlsplit(url).path.strip("/") or 0)
    try:
        with redis.Redis.from_url(url, single_connection_client=True) as client:
            me = client.client_id()
            return sum(1 for c in client.client_list() if int(c.get("db", -1)) == index and int(c["id"]) != me)
    except redis.RedisError:
        return None
