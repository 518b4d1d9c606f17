"""Read-only operator view of the deletion jobs (`account_deletions`): what the console's Deletions page
lists. Never the status token's hash; the job's row holds no content otherwise."""

from __future__ import annotations

from dataclasses import dataclass

from cogni_app.db import AppDatabase
from cogni_app.deletion.jobs import DeletionRecord, record_from_row

JOB_STATUSES: tuple[str, ...] = ("in_progress", "done")

DELETIONS_PAGE = """
SELECT billing_account_id, status, requested_by, steps, passes, last_error, requested_at, updated_at,
       completed_at, count(*) OVER () AS total
FROM account_deletions
WHERE (%(status)s::text IS NULL OR status = %(status)s)
ORDER BY requested_at DESC, billing_account_id
LIMIT %(limit)s OFFSET %(offset)s
"""

DELETIONS_TOTAL = """
SELECT count(*) AS total FROM account_deletions WHERE (%(status)s::text IS NULL OR status = %(status)s)
"""


@dataclass(frozen=True)
class DeletionPage:
    """One page of jobs, newest request first, and how many match in all."""

    items: list[DeletionRecord]
    total: int


class DeletionReads:
    def __init__(self, db: AppDatabase) -> None:
        self.db = db

    async def jobs(self, *, status: str | None, limit: int, offset: int) -> DeletionPage:
        """`status`: None (all), `in_progress` or `done`."""
        params = {"status": status, "limit": limit, "offset": offset}
        async with self.db.pool.connection() as conn:
            cur = await conn.execute(DELETIONS_PAGE, params)
            rows = [dict(r) for r in await cur.fetchall()]
            if rows:
                return DeletionPage(items=[record_from_row(r) for r in rows], total=int(rows[0]["total"]))
            if not offset:
                return DeletionPage(items=[], total=0)
            cur = await conn.execute(DELETIONS_TOTAL, params)  # past the end: still say how many there are
            row = await cur.fetchone()
        return DeletionPage(items=[], total=int(row["total"]) if row else 0)
