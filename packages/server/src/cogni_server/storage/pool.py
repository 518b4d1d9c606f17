"""The psycopg 3 connection pool shared by the repositories and the LangGraph checkpointer.

Connections are autocommit with dict rows (what ``AsyncPostgresSaver`` requires); repositories open
explicit transactions where several statements must commit together. JSON goes through orjson.
"""

from __future__ import annotations

from typing import Any

import orjson
from psycopg import AsyncConnection
from psycopg.rows import dict_row
from psycopg.types.json import set_json_dumps, set_json_loads
from psycopg_pool import AsyncConnectionPool

from cogni_server.serde import dumps_for_db

set_json_dumps(dumps_for_db)
set_json_loads(orjson.loads)

Conn = AsyncConnection[dict[str, Any]]


async def open_pool(url: str, *, min_size: int, max_size: int, connect_timeout: float) -> AsyncConnectionPool[Conn]:
    """Open the pool and wait until its minimum connections are up (fails fast when unreachable)."""
    pool: AsyncConnectionPool[Conn] = AsyncConnectionPool(
        url,
        min_size=min_size,
        max_size=max_size,
        kwargs={"autocommit": True, "row_factory": dict_row, "prepare_threshold": 0},
        open=False,
        timeout=connect_timeout,
        name="cogni",
    )
    await pool.open(wait=True, timeout=connect_timeout)
    return pool
