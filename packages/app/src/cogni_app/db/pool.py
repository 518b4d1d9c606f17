"""AppDatabase: one async connection pool with dict rows, opened and closed by the app's lifespan."""

from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool


class AppDatabase:
    """Owns the pool. `open()` does not migrate: `cogni-app migrate` (or `migrate(url)`) does."""

    def __init__(self, url: str, *, min_size: int = 1, max_size: int = 10) -> None:
        self.url = url
        self.pool: AsyncConnectionPool[AsyncConnection[dict[str, Any]]] = AsyncConnectionPool(
            url,
            min_size=min_size,
            max_size=max_size,
            kwargs={"row_factory": dict_row, "autocommit": True},
            connection_class=AsyncConnection[dict[str, Any]],
            check=AsyncConnectionPool.check_connection,  # survive a database restart
            open=False,
        )

    async def open(self) -> None:
        await self.pool.open(wait=True, timeout=30.0)

    async def close(self) -> None:
        await self.pool.close()
