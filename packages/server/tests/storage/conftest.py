"""A migrated throwaway database and a pool on it, for tests that call ``storage`` directly.

One database per module (migrations take a few hundred milliseconds); each test works on its own
threads and runs (fresh UUIDs), so tests in a module do not see each other's rows.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from psycopg_pool import AsyncConnectionPool

from cogni_server.storage.migrations import migrate
from cogni_server.storage.pool import open_pool
from testsupport import fresh_database


@pytest.fixture(scope="module")
def database() -> Iterator[str]:
    with fresh_database("cogni_storage") as url:
        yield url


@pytest.fixture
async def pool(database: str) -> AsyncIterator[AsyncConnectionPool[Any]]:
    await migrate(database)
    pool = await open_pool(database, min_size=1, max_size=6, connect_timeout=5)
    try:
        yield pool
    finally:
        await pool.close()
