"""Redis clients for the broker and the thread log, one job each.

Every live subscriber (an SSE or WebSocket stream, a ``join``) holds a connection for its
``XREAD BLOCK``; redis-py's pool allows 100 connections by default and raises
``MaxConnectionsError`` past that, which ended every idle stream beyond about 100 per instance.
Subscribers therefore read through their own client whose pool is large and *blocking*: past
``COGNI_REDIS_READ_CONNECTIONS`` a new subscriber waits for a connection instead of failing, and
writes, control messages and wake-ups keep their own pool, so many readers never starve a run.
"""

from __future__ import annotations

import redis.asyncio as aioredis

DEFAULT_READ_CONNECTIONS = 4096
# how long a subscriber waits for a free read connection once all are taken (then it errors)
READ_POOL_WAIT_SECONDS = 30.0


def connection_name(key_prefix: str) -> str:
    """``cogni:<key prefix>``: ``CLIENT LIST`` shows which connections are ours."""
    return "cogni:" + "".join(c if c.isprintable() and not c.isspace() else "_" for c in key_prefix)


def reader_client(url: str, *, key_prefix: str, max_connections: int = DEFAULT_READ_CONNECTIONS) -> aioredis.Redis:
    """A client for blocking stream reads: a blocking pool of up to ``max_connections``."""
    pool: aioredis.BlockingConnectionPool = aioredis.BlockingConnectionPool.from_url(
        url,
        max_connections=max_connections,
        timeout=READ_POOL_WAIT_SECONDS,
        decode_responses=False,
        client_name=connection_name(key_prefix),
    )
    return aioredis.Redis(connection_pool=pool)
