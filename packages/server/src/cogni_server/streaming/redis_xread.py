"""The shared reader's ``XREAD BLOCK``, packed here and sent on one connection of its own.

redis-py packs each argument of a command in Python (about 1.5 µs each, growing a buffer), so an
``XREAD`` over 2,000 keys cost 6 ms to pack, paid again on every read: every event batch of every
run. The shared reader keeps each key's and each position's protocol encoding (``bulk``) and joins
them, so a read over thousands of keys costs well under a millisecond of this process's time.
"""

from __future__ import annotations

import contextlib
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.connection import AbstractConnection
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

Entry = tuple[bytes, dict[bytes, bytes]]


def bulk(value: bytes | str) -> bytes:
    """One argument in the Redis protocol (a bulk string)."""
    raw = value.encode() if isinstance(value, str) else value
    return b"$%d\r\n%s\r\n" % (len(raw), raw)


class BlockingXRead:
    """``XREAD COUNT c BLOCK ms STREAMS k... id...`` on a dedicated connection (reconnects when lost)."""

    def __init__(self, pool: aioredis.ConnectionPool, *, count: int, block_ms: int) -> None:
        self._pool = pool
        self._connection: AbstractConnection | None = None
        self._head = b"".join(bulk(a) for a in ("XREAD", "COUNT", str(count), "BLOCK", str(block_ms), "STREAMS"))

    @classmethod
    def beside(cls, client: aioredis.Redis, *, count: int, block_ms: int) -> BlockingXRead:
        """A connection to the same server as ``client``, with the same name, but redis-py's retries
        off (the reader retries from the same ids itself) and a socket timeout past the block time,
        so a silently dead connection is noticed."""
        pool = client.connection_pool
        options = {**pool.connection_kwargs, "retry": Retry(NoBackoff(), 0), "socket_timeout": block_ms / 1000 + 10}
        own = aioredis.ConnectionPool(connection_class=pool.connection_class, max_connections=1, **options)
        return cls(own, count=count, block_ms=block_ms)

    async def read(
        self, keys: list[bytes], ids: list[bytes]
    ) -> list[tuple[bytes, list[tuple[bytes, dict[bytes, bytes]]]]]:
        """Entries after each ``ids[i]`` of ``keys[i]`` (both already ``bulk``-encoded); [] on timeout."""
        command = b"".join([b"*%d\r\n" % (6 + 2 * len(keys)), self._head, *keys, *ids])
        if self._connection is None:
            self._connection = await self._pool.get_connection()  # type: ignore[call-arg]  # stubs predate 5.3
        connection = self._connection
        try:
            await connection.send_packed_command(command, check_health=False)
            response = await connection.read_response()
        except BaseException:
            with contextlib.suppress(Exception):
                await connection.disconnect(nowait=True)  # the next read reconnects
            raise
        return _entries(response)

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self._pool.disconnect()


def _entries(response: Any) -> list[tuple[bytes, list[Entry]]]:
    if not response:
        return []
    pairs = response.items() if isinstance(response, dict) else response  # RESP3 maps, RESP2 lists
    out = []
    for key, entries in pairs:
        out.append((key, [(entry_id, _fields(fields)) for entry_id, fields in entries]))
    return out


def _fields(flat: Any) -> dict[bytes, bytes]:
    if not flat:
        return {}
    if isinstance(flat, dict):
        return flat
    return dict(zip(flat[::2], flat[1::2], strict=True))
