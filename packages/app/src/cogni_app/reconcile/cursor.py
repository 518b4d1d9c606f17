"""The reconciler's durable cursor: per spend-log source, the position up to which every call is reconciled.

Stored in the app database (`reconcile_cursors`). It only moves forward: two reconcilers side by side
may both advance it, and the later position wins whichever commits first.
"""

from __future__ import annotations

from cogni_app.db import AppDatabase
from cogni_app.reconcile.records import Position

LOAD_CURSOR = "SELECT position_at, position_id FROM reconcile_cursors WHERE source = %s"
ADVANCE_CURSOR = """
INSERT INTO reconcile_cursors (source, position_at, position_id) VALUES (%s, %s, %s)
ON CONFLICT (source) DO UPDATE SET position_at = EXCLUDED.position_at, position_id = EXCLUDED.position_id,
                                   updated_at = now()
WHERE (reconcile_cursors.position_at, reconcile_cursors.position_id)
      < (EXCLUDED.position_at, EXCLUDED.position_id)
"""


class ReconcileCursors:
    """Reads and advances the cursors of the spend-log sources."""

    def __init__(self, db: AppDatabase) -> None:
        self.db = db

    async def load(self, source: str) -> Position | None:
        """The committed position of `source`; None before its first sweep (read from the very first call)."""
        async with self.db.pool.connection() as conn:
            cur = await conn.execute(LOAD_CURSOR, (source,))
            row = await cur.fetchone()
        return (row["position_at"], str(row["position_id"])) if row else None

    async def advance(self, source: str, position: Position) -> None:
        """Move the cursor to `position` unless it is already further."""
        async with self.db.pool.connection() as conn:
            await conn.execute(ADVANCE_CURSOR, (source, position[0], position[1]))
