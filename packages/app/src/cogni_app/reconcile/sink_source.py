"""SinkTableSource: reads `litellm_spend_logs`, the table cogni_litellm_sink writes.

The DDL is owned by the sink (cogni_litellm_sink.schema); this reader depends only on its columns.
A missing table (the sink has not written yet) reads as no calls.
"""

from datetime import datetime
from typing import Any

import psycopg
import structlog
from psycopg import sql
from psycopg.rows import dict_row

from cogni_app.reconcile.facts import key_account_of
from cogni_app.reconcile.records import EPOCH, Position, SpendLogRecord, as_decimal, as_dict

SINK_TABLE = "litellm_spend_logs"
_COLUMNS = (
    "call_id, end_user, spend, prompt_tokens, completion_tokens, model, model_group, status,"
    " error_code, spend_logs_metadata, start_time, end_time, inserted_at,"
    # added to the sink's table later: read through to_jsonb so a table the sink has not upgraded yet reads as null
    " to_jsonb(l.*)->>'key_alias' AS key_alias, to_jsonb(l.*)->>'key_user_id' AS key_user_id"
)

RETENTION_DELETE = (
    "DELETE FROM {} WHERE inserted_at < now() - make_interval(days => %(days)s)"
    " AND (inserted_at, call_id) <= (%(cursor_at)s, %(cursor_id)s)"
)
"""Retention: rows older than `days` that the reconciler has passed (at or before its committed cursor, so
billed or not billable). A row the cursor has not reached, however old, is never deleted."""

log = structlog.get_logger(__name__)


def record_from_row(row: dict[str, Any]) -> SpendLogRecord:
    return SpendLogRecord(
        call_id=str(row["call_id"]),
        end_user=row.get("end_user"),
        spend=as_decimal(row.get("spend")),
        prompt_tokens=row.get("prompt_tokens"),
        completion_tokens=row.get("completion_tokens"),
        model=row.get("model"),
        model_group=row.get("model_group"),
        status=str(row.get("status") or "success"),
        metadata=as_dict(row.get("spend_logs_metadata")),
        start_time=row.get("start_time"),
        end_time=row.get("end_time"),
        error_code=row.get("error_code"),
        position_at=row.get("inserted_at"),
        key_account=key_account_of(row.get("key_alias"), row.get("key_user_id")),
    )


class SinkTableSource:
    """Spend-log reader over the sink's Postgres table (COGNI_SPEND_SINK_DATABASE_URL)."""

    def __init__(self, database_url: str, *, table: str = SINK_TABLE, connect_timeout: float = 10.0) -> None:
        self.database_url = database_url
        self.table = table
        self.connect_timeout = connect_timeout

    @property
    def name(self) -> str:
        return f"sink:{self.table}"

    async def _select(
        self,
        where: str,
        params: tuple[Any, ...],
        *,
        order: str = "coalesce(start_time, inserted_at), call_id",
        limit: int | None = None,
    ) -> list[SpendLogRecord]:
        query = sql.SQL("SELECT {} FROM {} AS l WHERE {} ORDER BY {}").format(
            sql.SQL(_COLUMNS), sql.Identifier(self.table), sql.SQL(where), sql.SQL(order)
        )
        if limit is not None:
            query = query + sql.SQL(" LIMIT {}").format(sql.Literal(limit))
        async with await psycopg.AsyncConnection.connect(
            self.database_url, autocommit=True, row_factory=dict_row, connect_timeout=int(self.connect_timeout)
        ) as conn:
            try:
                cur = await conn.execute(query, params)
            except psycopg.errors.UndefinedTable:
                log.warning("spend-log table missing: no calls to reconcile yet", table=self.table)
                return []
            return [record_from_row(row) for row in await cur.fetchall()]

    async def for_run(self, billing_account_id: str, run_id: str) -> list[SpendLogRecord]:
        return await self._select(
            "spend_logs_metadata->>'run_id' = %s AND (end_user = %s OR to_jsonb(l.*)->>'key_user_id' = %s)",
            (run_id, billing_account_id, billing_account_id),
        )

    async def after(self, position: Position | None, *, limit: int) -> list[SpendLogRecord]:
        """In insertion order (the sink's `(inserted_at, call_id)` index); `position` is one such pair."""
        at, call_id = position or (EPOCH, "")
        return await self._select(
            "(inserted_at, call_id) > (%s, %s)", (at, call_id), order="inserted_at, call_id", limit=limit
        )

    async def prune(self, *, keep_days: int, reconciled_through: Position) -> int:
        """Delete rows older than `keep_days` that lie at or before the committed cursor; returns how many."""
        params = {"days": keep_days, "cursor_at": reconciled_through[0], "cursor_id": reconciled_through[1]}
        async with await psycopg.AsyncConnection.connect(
            self.database_url, autocommit=True, connect_timeout=int(self.connect_timeout)
        ) as conn:
            try:
                cur = await conn.execute(sql.SQL(RETENTION_DELETE).format(sql.Identifier(self.table)), params)
            except psycopg.errors.UndefinedTable:
                return 0
            return cur.rowcount

    async def since(self, start: datetime) -> list[SpendLogRecord]:
        return await self._select("coalesce(end_time, start_time, inserted_at) >= %s", (start,))
