"""Redis clients for the broker and the thread log, one job each.

Live subscribers (SSE and WebSocket streams, ``join``) no longer hold a connection each: one
``SharedStreamReader`` per broker (and per thread log) blocks in ``XREAD`` for all of them on a
connection of its own (``shared_reader_client``). What a subscriber still sends itself is short:
the ``XREVRANGE`` that finds where "from now on" starts. Those go through ``reader_client``, a
*blocking* pool of ``COGNI_REDIS_READ_CONNECTIONS``: past that many at once a subscriber waits for a
connection instead of failing (redis-py's default pool raises ``MaxConnectionsError`` past 100), and
writes, control messages and wake-ups keep their own pool, so many readers never starve a run.
"""

from __future__ import annotations

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

DEFAULT_READ_CONNECTIONS = 64
# how long a subscriber waits for a free read connection once all are taken (then it errors)
READ_POOL_WAIT_SECONDS = 30.0


def connection_name(key_prefix: str) -> str:
    """``cogni:<key prefix>``: ``CLIENT LIST`` shows which connections are ours."""
    return "cogni:" + "".join(c if c.isprintable() and not c.isspace() else "_" for c in key_prefix)


def reader_client(url: str, *, key_prefix: str, max_connections: int = DEFAULT_READ_CONNECTIONS) -> aioredis.Redis:
    """A client for subscribers' short reads: a blocking pool of up to ``max_connections``."""
    pool: aioredis.BlockingConnectionPool = aioredis.BlockingConnectionPool.from_url(
        url,
        max_connections=max_connections,
        timeout=READ_POOL_WAIT_SECONDS,
        decode_responses=False,
        client_name=connection_name(key_prefix),
    )
    return aioredis.Redis(connection_pool=pool)


def shared_reader_client(url: str, *, key_prefix: str, block_ms: int) -> aioredis.Redis:
    """The shared reader's one connection: redis-py's retries off (the reader retries from the same
    ids itself) and a socket timeout past the block time, so a silently dead connection is noticed."""
    return aioredis.Redis.from_url(
        url,
        decode_responses=False,
        client_name=connection_name(key_prefix),
        single_connection_client=True,
        retry=Retry(NoBackoff(), 0),
        socket_timeout=block_ms / 1000 + 10,
    )
