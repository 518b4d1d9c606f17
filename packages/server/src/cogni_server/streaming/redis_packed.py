"""Redis commands packed by hand and sent as one pipeline on a pooled connection.

redis-py's pipeline builds each command through its command methods, packs every argument in Python
and runs every reply through the command's callback: on a 1,000-token answer with the Redis broker the
batched writer's pipelines were a fifth of the server's samples (two ``XADD`` per token event: the
run's stream and the thread's). Here a command is the protocol bytes of its arguments (``command``),
a batch goes out in one write, and its replies are read back in order, a server error kept as a value
in its place (what redis-py's ``pipeline.execute(raise_on_error=False)`` returns).
"""

from __future__ import annotations

from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from cogni_server.streaming.redis_xread import bulk

Arg = bytes | str | int


def command(*args: Arg) -> bytes:
    """One command in the Redis protocol: an array of bulk strings."""
    return b"*%d\r\n" % len(args) + b"".join(bulk(str(a) if isinstance(a, int) else a) for a in args)


async def execute(client: aioredis.Redis, commands: list[bytes]) -> list[Any]:
    """Send ``commands`` in one write on a connection of ``client``'s pool; one reply per command.

    A connection error (or a cancellation) mid-batch disconnects the connection before it goes back to
    the pool: replies left unread must never reach the next user of that connection.
    """
    pool = client.connection_pool
    connection = await pool.get_connection()
    try:
        await connection.send_packed_command(b"".join(commands), check_health=False)
        replies: list[Any] = []
        for _ in commands:
            try:
                replies.append(await connection.read_response())
            except ResponseError as exc:  # this command failed; the connection is fine
                replies.append(exc)
        return replies
    except BaseException:
        await connection.disconnect(nowait=True)
        raise
    finally:
        await pool.release(connection)
