"""Thread search SQL against a real Postgres: the total counts what the filters match."""

from __future__ import annotations

import uuid
from typing import Any

from psycopg_pool import AsyncConnectionPool

from cogni_server.storage import threads


async def test_search_by_ids_that_match_nothing_reports_a_total_of_zero(pool: AsyncConnectionPool[Any]) -> None:
    tenant = f"tenant-{uuid.uuid4().hex[:8]}"
    async with pool.connection() as conn:
        for _ in range(3):
            await threads.create(conn, owner=tenant, thread_id=uuid.uuid4(), metadata={}, if_exists="raise")
        page = dict(limit=10, offset=0, sort_by="created_at", sort_order="desc")
        rows, total = await threads.search(
            conn, tenant, metadata=None, values=None, status=None, ids=[uuid.uuid4()], **page
        )
        assert (rows, total) == ([], 0)  # was 3: the fallback count ignored ``ids``
        rows, total = await threads.search(conn, tenant, metadata=None, values=None, status=None, ids=None, **page)
        assert len(rows) == 3 and total == 3
        past = dict(page, offset=10)
        rows, total = await threads.search(conn, tenant, metadata=None, values=None, status=None, ids=None, **past)
        assert rows == [] and total == 3
