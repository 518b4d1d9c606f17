"""Redis clients for the broker and the thread log: connection names and the command pool.

Live subscribers (SSE and WebSocket streams, ``join``) hold no connection of their own: one
``SharedStreamReader`` per broker (and per thread log) blocks in ``XREAD`` for all of them on two
connections, a hot and a cold lane (``redis_reader``, ``redis_xread``). Before, every subscriber
held a connection for its ``XREAD BLOCK``: redis-py's default pool raises ``MaxConnectionsError``
past 100, which ended every idle stream beyond about 100, and a pool sized for thousands held
thousands of connections.
"""

from __future__ import annotations

import redis.asyncio as aioredis


def connection_name(key_prefix: str) -> str:
    """``cogni:<key prefix>``: ``CLIENT LIST`` shows which connections are ours."""
    return "cogni:" + "".join(c if c.isprintable() and not c.isspace() else "_" for c in key_prefix)


# Connections for short commands (control messages, wake-ups, the thread log's reads and writes) per
# client. redis-py's default pool opens one per concurrent command and raises ``MaxConnectionsError``
# past 100: 500 WebSockets opening at once failed. This pool *blocks* past the limit instead (for up
# to POOL_WAIT_SECONDS), and keeps at most this many connections open.
COMMAND_CONNECTIONS = 32
POOL_WAIT_SECONDS = 30.0


def command_client(url: str, *, key_prefix: str) -> aioredis.Redis:
    """A client for short commands: a blocking pool of at most ``COMMAND_CONNECTIONS``, named."""
    pool: aioredis.BlockingConnectionPool = aioredis.BlockingConnectionPool.from_url(
        url,
        max_connections=COMMAND_CONNECTIONS,
        timeout=POOL_WAIT_SECONDS,
        decode_responses=False,
        client_name=connection_name(key_prefix),
    )
    return aioredis.Redis(connection_pool=pool)
