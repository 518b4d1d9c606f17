"""The spend log's part of a user's data deletion: the account's LiteLLM spend-log rows lose their content
and keep their money.

The sink's table (`litellm_spend_logs`, owned by cogni_litellm_sink.schema) holds no prompt or answer,
but its rows can carry a user's words and identifiers in two places: `spend_logs_metadata` (the client's
request id, trace id, the conversation's thread id, and whatever else a caller put into the header) and
`request_tags`; `provider_response_id` names the provider's stored answer. Those are cleared. What billing
needs stays: call id, account (`end_user`), spend, tokens, model, status, times, and of the metadata only
the keys the reconciler reads to match a call to its receipt (`KEPT_METADATA_KEYS`): so a reconcile after
the deletion finds every call already billed and bills nothing twice.
"""

from __future__ import annotations

import psycopg

SPEND_LOG_TABLE = "litellm_spend_logs"  # cogni_litellm_sink.schema.TABLE
KEPT_METADATA_KEYS: tuple[str, ...] = (
    "run_id",
    "attempt",
    "billing_account_id",
    "virtual_key_id",
    "graph_id",
    "executor_type",
)
"""The reconciler's keys: the receipt's idempotency key is run_id/attempt/call id; the rest price and place it."""

_ACCOUNT_ROWS = "(end_user = %(account)s OR spend_logs_metadata->>'billing_account_id' = %(account)s)"
SCRUB_ROWS = f"""
UPDATE {SPEND_LOG_TABLE}
SET spend_logs_metadata = (
        SELECT coalesce(jsonb_object_agg(key, value), '{{}}'::jsonb)
        FROM jsonb_each(spend_logs_metadata) WHERE key = ANY(%(keep)s)
    ),
    request_tags = '[]'::jsonb,
    provider_response_id = NULL
WHERE {_ACCOUNT_ROWS}
"""
"""Idempotent: a scrubbed row is scrubbed again to the same value."""


class SpendLogScrubber:
    """Scrubs the sink table in COGNI_SPEND_SINK_DATABASE_URL (a missing table: nothing to scrub)."""

    def __init__(self, database_url: str, *, connect_timeout: float = 10.0) -> None:
        self.database_url = database_url
        self.connect_timeout = connect_timeout

    async def scrub(self, account_id: str) -> dict[str, int]:
        """Clear the content of every spend-log row of the account; {table: rows now without content}."""
        async with await psycopg.AsyncConnection.connect(
            self.database_url, autocommit=True, connect_timeout=max(int(self.connect_timeout), 1)
        ) as conn:
            try:
                cur = await conn.execute(SCRUB_ROWS, {"account": account_id, "keep": list(KEPT_METADATA_KEYS)})
            except psycopg.errors.UndefinedTable:
                return {SPEND_LOG_TABLE: 0}
            return {SPEND_LOG_TABLE: max(cur.rowcount, 0)}
