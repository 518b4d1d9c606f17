"""Redis connection names: ``CLIENT LIST`` shows which connections are ours.

Live subscribers (SSE and WebSocket streams, ``join``) hold no connection of their own: one
``SharedStreamReader`` per broker (and per thread log) blocks in ``XREAD`` for all of them on one
connection (``redis_reader``, ``redis_xread``). Before, every subscriber held a connection for its
``XREAD BLOCK``: redis-py's default pool raises ``MaxConnectionsError`` past 100, which ended every
idle stream beyond about 100, and a pool sized for thousands held thousands of connections.
"""

from __future__ import annotations


def connection_name(key_prefix: str) -> str:
    """``cogni:<key prefix>``: ``CLIENT LIST`` shows which connections are ours."""
    return "cogni:" + "".join(c if c.isprintable() and not c.isspace() else "_" for c in key_prefix)
