"""Read-only operator queries over the billing tables: what the operator console lists and charts.

Every query is a named constant; every list is paged (limit/offset) and returns its total so the page
can say "41-60 of 213". Nothing here writes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cogni_app.billing.types import LEDGER_CHARGE_REASON
from cogni_app.db import AppDatabase

ACCOUNTS_PAGE = """
SELECT id, name, balance_credits, created_at, count(*) OVER () AS total
FROM billing_accounts
WHERE (%(q)s::text IS NULL OR name ILIKE '%%' || %(q)s || '%%' OR id = %(q)s)
  AND (%(balance)s::text IS NULL OR (%(balance)s = 'negative' AND balance_credits < 0)
       OR (%(balance)s = 'positive' AND balance_credits > 0))
ORDER BY created_at DESC, id
LIMIT %(limit)s OFFSET %(offset)s
"""

ACCOUNTS_TOTAL = """
SELECT count(*) AS total FROM billing_accounts
WHERE (%(q)s::text IS NULL OR name ILIKE '%%' || %(q)s || '%%' OR id = %(q)s)
  AND (%(balance)s::text IS NULL OR (%(balance)s = 'negative' AND balance_credits < 0)
       OR (%(balance)s = 'positive' AND balance_credits > 0))
"""

API_KEYS = """
SELECT k.id, k.key_prefix, k.virtual_key_id, v.label, k.created_at, k.revoked_at
FROM api_keys k JOIN virtual_keys v ON v.id = k.virtual_key_id
WHERE k.billing_account_id = %(account)s
ORDER BY k.created_at DESC, k.id
"""

RECEIPTS_PAGE = """
SELECT id, run_id, attempt, litellm_call_id, charged_credits, response_cost_usd, provenance, graph_id,
       executor_type, model, input_tokens, output_tokens, under_billed, created_at, count(*) OVER () AS total
FROM charge_receipts
WHERE billing_account_id = %(account)s
  AND (%(provenance)s::text IS NULL OR provenance = %(provenance)s)
  AND (%(run_id)s::text IS NULL OR run_id = %(run_id)s)
ORDER BY created_at DESC, id
LIMIT %(limit)s OFFSET %(offset)s
"""

LEDGER_PAGE = """
SELECT id, amount, balance_after, reason, reference, virtual_key_id, metadata, created_at,
       count(*) OVER () AS total
FROM credit_ledger
WHERE billing_account_id = %(account)s AND (%(reason)s::text IS NULL OR reason = %(reason)s)
ORDER BY created_at DESC, id DESC
LIMIT %(limit)s OFFSET %(offset)s
"""

CREDITS_PER_DAY = """
SELECT to_char(d, 'YYYY-MM-DD') AS day,
       coalesce(sum(-l.amount) FILTER (WHERE l.reason = %(charge)s), 0) AS charged,
       coalesce(sum(l.amount) FILTER (WHERE l.reason <> %(charge)s AND l.amount > 0), 0) AS issued
FROM generate_series(current_date - (%(days)s - 1), current_date, interval '1 day') AS d
LEFT JOIN credit_ledger l
       ON l.created_at >= d AND l.created_at < d + interval '1 day'
      AND (%(account)s::text IS NULL OR l.billing_account_id = %(account)s)
GROUP BY d ORDER BY d
"""

TODAY_TOTALS = """
SELECT coalesce(sum(amount) FILTER (WHERE reason <> %(charge)s AND amount > 0), 0) AS issued,
       coalesce(sum(-amount) FILTER (WHERE reason = %(charge)s), 0) AS charged,
       count(*) FILTER (WHERE reason = %(charge)s) AS receipts
FROM credit_ledger WHERE created_at >= current_date
"""

RECEIPTS_TODAY_BY_PROVENANCE = """
SELECT provenance, count(*) AS receipts FROM charge_receipts WHERE created_at >= current_date GROUP BY provenance
"""

CHARGED_PER_HOUR = """
SELECT h AS hour, coalesce(sum(r.charged_credits), 0) AS charged, count(r.id) AS receipts
FROM generate_series(date_trunc('hour', now()) - interval '23 hours', date_trunc('hour', now()),
                     interval '1 hour') AS h
LEFT JOIN charge_receipts r ON r.created_at >= h AND r.created_at < h + interval '1 hour'
GROUP BY h ORDER BY h
"""


@dataclass(frozen=True)
class Page:
    """One page of rows and how many rows match in all."""

    items: list[dict[str, Any]]
    total: int


def _page(rows: list[dict[str, Any]]) -> Page:
    total = int(rows[0]["total"]) if rows else 0
    return Page(items=[{k: v for k, v in r.items() if k != "total"} for r in rows], total=total)


class BillingReads:
    """The console's view of the ledger: accounts, keys (no hashes), receipts, ledger rows, daily sums."""

    def __init__(self, db: AppDatabase) -> None:
        self.db = db

    async def _rows(self, query: str, params: dict[str, Any]) -> list[dict[str, Any]]:
        async with self.db.pool.connection() as conn:
            cur = await conn.execute(query, params)
            return [dict(r) for r in await cur.fetchall()]

    async def accounts(self, *, q: str | None, balance: str | None, limit: int, offset: int) -> Page:
        """`balance`: None (all), "negative" (in debt) or "positive"."""
        params = {"q": q, "balance": balance, "limit": limit, "offset": offset}
        page = _page(await self._rows(ACCOUNTS_PAGE, params))
        if not page.items and offset:  # past the end: still say how many there are
            total = (await self._rows(ACCOUNTS_TOTAL, params))[0]["total"]
            return Page(items=[], total=int(total))
        return page

    async def api_keys(self, account_id: str) -> list[dict[str, Any]]:
        return await self._rows(API_KEYS, {"account": account_id})

    async def receipts(
        self, account_id: str, *, provenance: str | None, run_id: str | None, limit: int, offset: int
    ) -> Page:
        params = {"account": account_id, "provenance": provenance, "run_id": run_id, "limit": limit, "offset": offset}
        return _page(await self._rows(RECEIPTS_PAGE, params))

    async def ledger(self, account_id: str, *, reason: str | None, limit: int, offset: int) -> Page:
        params = {"account": account_id, "reason": reason, "limit": limit, "offset": offset}
        return _page(await self._rows(LEDGER_PAGE, params))

    async def credits_per_day(self, account_id: str | None, *, days: int) -> list[dict[str, Any]]:
        return await self._rows(CREDITS_PER_DAY, {"account": account_id, "days": days, "charge": LEDGER_CHARGE_REASON})

    async def today(self) -> dict[str, Any]:
        [totals] = await self._rows(TODAY_TOTALS, {"charge": LEDGER_CHARGE_REASON})
        by_provenance = await self._rows(RECEIPTS_TODAY_BY_PROVENANCE, {})
        return {**totals, "receipts_by_provenance": {r["provenance"]: r["receipts"] for r in by_provenance}}

    async def charged_per_hour(self) -> list[dict[str, Any]]:
        return await self._rows(CHARGED_PER_HOUR, {})
