"""Credit holds: a run's estimate is reserved against the balance before it starts, and released when it ends.

Without them, preflight only compared the balance with one estimate, so 20 chats started together on a
balance worth 3 all passed and drove the account into debt. `take` locks the account row, and grants a
hold only if `balance - open holds >= estimate`, so concurrent preflights of one account take turns and
at most as many runs start as the balance covers. The relay releases the hold once the run has ended and
its usage is committed (completion, failure or cancellation alike). A hold whose run was killed before it
could release it expires after `ttl_seconds` and stops counting: it cannot lock credits for ever.
"""

from __future__ import annotations

from dataclasses import dataclass

import structlog

from cogni_app.billing.errors import InsufficientCredits, UnknownAccount
from cogni_app.db import AppDatabase

log = structlog.get_logger(__name__)

LOCK_ACCOUNT = "SELECT balance_credits FROM billing_accounts WHERE id = %s FOR UPDATE"
OPEN_HOLDS = (
    "SELECT coalesce(sum(amount), 0) AS held FROM credit_holds"
    " WHERE billing_account_id = %s AND released_at IS NULL AND expires_at > now()"
)
INSERT_HOLD = (
    "INSERT INTO credit_holds (billing_account_id, run_id, state_key, amount, expires_at)"
    " VALUES (%s, %s, %s, %s, now() + make_interval(secs => %s)) RETURNING id"
)
RELEASE_HOLD = "UPDATE credit_holds SET released_at = now() WHERE id = %s AND released_at IS NULL"
THREAD_CONTEXT_TOKENS = """
SELECT coalesce(max(coalesce(r.input_tokens, 0) + coalesce(r.output_tokens, 0)), 0) AS tokens
FROM charge_receipts r
WHERE r.billing_account_id = %(account)s AND r.run_id IN (
    SELECT h.run_id FROM credit_holds h
    WHERE h.billing_account_id = %(account)s AND h.state_key = %(state_key)s
    ORDER BY h.created_at DESC LIMIT 5
)
"""


@dataclass(frozen=True)
class Hold:
    id: str
    billing_account_id: str
    run_id: str
    amount: int


class CreditHolds:
    """Takes and releases holds on one app database."""

    def __init__(self, db: AppDatabase, *, ttl_seconds: float = 900.0) -> None:
        self.db = db
        self.ttl_seconds = ttl_seconds

    async def take(self, billing_account_id: str, run_id: str, amount: int, *, state_key: str | None = None) -> Hold:
        """Reserve `amount` credits for a run, or raise InsufficientCredits (HTTP 402; nothing written).

        An account in debt is refused even for a free model (amount 0).
        """
        async with self.db.pool.connection() as conn, conn.transaction():
            cur = await conn.execute(LOCK_ACCOUNT, (billing_account_id,))
            account = await cur.fetchone()
            if account is None:
                raise UnknownAccount(f"no billing account {billing_account_id!r}")
            cur = await conn.execute(OPEN_HOLDS, (billing_account_id,))
            held = await cur.fetchone()
            available = int(account["balance_credits"]) - int(held["held"] if held else 0)
            if available < amount or available < 0:
                raise InsufficientCredits(required=amount, balance=available)
            cur = await conn.execute(INSERT_HOLD, (billing_account_id, run_id, state_key, amount, self.ttl_seconds))
            row = await cur.fetchone()
            assert row is not None
        return Hold(id=str(row["id"]), billing_account_id=billing_account_id, run_id=run_id, amount=amount)

    async def release(self, hold: Hold) -> None:
        """Settle a hold (the run ended; its charges are committed). Idempotent."""
        async with self.db.pool.connection() as conn:
            await conn.execute(RELEASE_HOLD, (hold.id,))

    async def thread_context_tokens(self, billing_account_id: str, state_key: str) -> int:
        """Tokens the conversation already holds: the largest call (prompt + answer) of its last runs."""
        async with self.db.pool.connection() as conn:
            cur = await conn.execute(THREAD_CONTEXT_TOKENS, {"account": billing_account_id, "state_key": state_key})
            row = await cur.fetchone()
        return int(row["tokens"]) if row else 0
