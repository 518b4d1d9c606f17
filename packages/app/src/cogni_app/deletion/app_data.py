"""The app database's part of a user's data deletion: every table of the app's schema, with what happens
to the account's rows in it.

Every table must be listed here, in `DELETED`, `SCRUBBED` or `OTHER_TABLES` (with why it holds nothing of
a user's): the deletion test compares these with the database catalogue, so a table added later cannot be
missed silently. Tables that a deployment may not have (the in-process checkpointer's, created only when a
graph runs in the app) are skipped when absent.

The accounting rows stay (receipts, ledger rows, alerts, corrections, the account row with its balance):
accounts must still balance and the charges stay auditable. They hold ids and numbers, no content; the
two text fields in them that a client or an operator could fill with words (the account's name, the
receipt's client-chosen request id) are blanked.
"""

from __future__ import annotations

from typing import Any

from psycopg import AsyncConnection

DELETED_ACCOUNT_NAME = "(deleted)"

# The in-process executor's conversations (LangGraph's Postgres checkpointer, when graphs run in the app):
# a conversation's threads are the ones whose checkpoints carry the account in their metadata (the run's
# configurable `billingAccountId`, which LangGraph copies into every checkpoint's metadata).
_ACCOUNT_THREADS = "SELECT DISTINCT thread_id FROM checkpoints WHERE metadata->>'billingAccountId' = %(account)s"
DELETE_CHECKPOINT_WRITES = f"DELETE FROM checkpoint_writes WHERE thread_id IN ({_ACCOUNT_THREADS})"
DELETE_CHECKPOINT_BLOBS = f"DELETE FROM checkpoint_blobs WHERE thread_id IN ({_ACCOUNT_THREADS})"
DELETE_CHECKPOINTS = "DELETE FROM checkpoints WHERE metadata->>'billingAccountId' = %(account)s"
DELETE_CREDIT_HOLDS = "DELETE FROM credit_holds WHERE billing_account_id = %(account)s"
DELETE_API_KEYS = "DELETE FROM api_keys WHERE billing_account_id = %(account)s"
DELETE_VIRTUAL_KEYS = "DELETE FROM virtual_keys WHERE billing_account_id = %(account)s"
DELETE_LLM_KEYS = "DELETE FROM llm_keys WHERE billing_account_id = %(account)s"
BLANK_ACCOUNT_NAME = "UPDATE billing_accounts SET name = %(blank)s WHERE id = %(account)s AND name <> %(blank)s"
BLANK_RECEIPT_REQUEST_IDS = (
    "UPDATE charge_receipts SET ingress_request_id = NULL"
    " WHERE billing_account_id = %(account)s AND ingress_request_id IS NOT NULL"
)

DELETED: dict[str, str] = {
    # order matters: blobs and writes are found through the checkpoints, api keys reference virtual keys
    "checkpoint_writes": DELETE_CHECKPOINT_WRITES,
    "checkpoint_blobs": DELETE_CHECKPOINT_BLOBS,
    "checkpoints": DELETE_CHECKPOINTS,
    "credit_holds": DELETE_CREDIT_HOLDS,
    "api_keys": DELETE_API_KEYS,
    "virtual_keys": DELETE_VIRTUAL_KEYS,
    "llm_keys": DELETE_LLM_KEYS,
}
"""Tables whose rows of the account are deleted (count = rows deleted)."""

SCRUBBED: dict[str, str] = {
    "billing_accounts": BLANK_ACCOUNT_NAME,
    "charge_receipts": BLANK_RECEIPT_REQUEST_IDS,
}
"""Accounting tables whose rows stay with their free-text fields blanked (count = rows blanked)."""

KEPT: dict[str, str] = {
    "credit_ledger": "the balance's history: amounts, reasons, receipt ids (no content)",
    "billing_alerts": "under-billed calls for an operator: model name and receipt reference (no content)",
    "charge_corrections": "late-cost corrections of receipts: amounts (no content)",
    "account_deletions": "the deletion record itself: who asked, when, counts",
}
"""Accounting tables whose rows of the account stay unchanged, and why."""

OTHER_TABLES: dict[str, str] = {
    "schema_migrations": "applied migration versions",
    "checkpoint_migrations": "the checkpointer's applied migration versions",
    "reconcile_cursors": "the reconciler's position in the spend log (no account)",
}
"""Tables without any account's data."""

ALL_TABLES = {**DELETED, **SCRUBBED, **KEPT, **OTHER_TABLES}


async def _existing(conn: AsyncConnection[dict[str, Any]], tables: list[str]) -> set[str]:
    cur = await conn.execute(
        "SELECT t FROM unnest(%s::text[]) AS t WHERE to_regclass(quote_ident(t)) IS NOT NULL", (tables,)
    )
    return {str(row["t"]) for row in await cur.fetchall()}


async def delete_account_data(conn: AsyncConnection[dict[str, Any]], account_id: str) -> dict[str, int]:
    """Delete and blank the account's rows (call inside a transaction); rows touched per table.

    Idempotent: a second call finds nothing left to delete or blank and counts 0.
    """
    statements = {**DELETED, **SCRUBBED}
    present = await _existing(conn, list(statements))
    params = {"account": account_id, "blank": DELETED_ACCOUNT_NAME}
    counts: dict[str, int] = {}
    for table, statement in statements.items():
        if table not in present:
            continue
        cur = await conn.execute(statement.encode(), params)
        counts[table] = max(cur.rowcount, 0)
    return counts
