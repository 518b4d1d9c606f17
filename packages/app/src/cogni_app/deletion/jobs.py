"""The deletion jobs table (`account_deletions`): one row per billing account, the job and its record.

A job's `steps` is `{step: {"status": "pending"|"done"|"skipped", "counts": {...}, "reason"?: str}}`,
counts adding up over passes. One process at a time works on an account's job, holding a Postgres session
lock on a pool connection for the pass: a crash closes the connection and frees it, and every step is
idempotent, so the next pass (the next call, or the app's start) just repeats what was not recorded done.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from psycopg.types.json import Jsonb

from cogni_app.db import AppDatabase
from cogni_app.deletion.app_data import delete_account_data

STEPS: tuple[str, ...] = ("server", "app", "spend_log")
"""In this order: the Agent Server first (its purge stops the account's runs, so no new content or LLM
call appears behind our back), then the app's own rows, then the spend log (the calls of the stopped runs
have been written by then)."""

STATUS_TOKEN_PREFIX = "cogni_del_"
Requester = Literal["user", "operator"]

ACCOUNT_FOR_UPDATE = "SELECT id FROM billing_accounts WHERE id = %s FOR UPDATE"
REVOKE_API_KEYS = "UPDATE api_keys SET revoked_at = now() WHERE billing_account_id = %s AND revoked_at IS NULL"
REVOKE_LLM_KEYS = "UPDATE llm_keys SET revoked_at = now() WHERE billing_account_id = %s AND revoked_at IS NULL"
SELECT_JOB = "SELECT * FROM account_deletions WHERE billing_account_id = %s"
SELECT_JOB_FOR_UPDATE = SELECT_JOB + " FOR UPDATE"
SELECT_JOB_BY_TOKEN = "SELECT * FROM account_deletions WHERE status_token_hash = %s"
SELECT_OPEN_JOBS = "SELECT billing_account_id FROM account_deletions WHERE status = 'in_progress' ORDER BY requested_at"
INSERT_JOB = (
    "INSERT INTO account_deletions (billing_account_id, status, requested_by, status_token_hash, steps)"
    " VALUES (%s, 'in_progress', %s, %s, %s) RETURNING *"
)
REOPEN_JOB = (
    "UPDATE account_deletions SET status = 'in_progress', requested_by = %s, steps = %s,"
    " requested_at = now(), updated_at = now(), completed_at = NULL, last_error = NULL"
    " WHERE billing_account_id = %s RETURNING *"
)
UPDATE_STEPS = (
    "UPDATE account_deletions SET steps = %s, last_error = NULL, updated_at = now() WHERE billing_account_id = %s"
)
FINISH_JOB = (
    "UPDATE account_deletions SET status = 'done', completed_at = now(), updated_at = now(), last_error = NULL,"
    " passes = passes + 1 WHERE billing_account_id = %s AND status = 'in_progress'"
)
RECORD_ERROR = (
    "UPDATE account_deletions SET last_error = %s, passes = passes + 1, updated_at = now()"
    " WHERE billing_account_id = %s"
)
TRY_LOCK = "SELECT pg_try_advisory_lock(hashtextextended('cogni_app.deletion:' || %s, 0))"
UNLOCK = "SELECT pg_advisory_unlock(hashtextextended('cogni_app.deletion:' || %s, 0))"


def hash_status_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class DeletionRecord:
    """A job as stored: what the user and the operator read back."""

    billing_account_id: str
    status: str
    requested_by: str
    steps: dict[str, dict[str, Any]]
    passes: int
    last_error: str | None
    requested_at: datetime
    updated_at: datetime
    completed_at: datetime | None

    def step_done(self, step: str) -> bool:
        return self.steps.get(step, {}).get("status") in ("done", "skipped")


def record_from_row(row: dict[str, Any]) -> DeletionRecord:
    return DeletionRecord(
        billing_account_id=str(row["billing_account_id"]),
        status=str(row["status"]),
        requested_by=str(row["requested_by"]),
        steps=dict(row["steps"]),
        passes=int(row["passes"]),
        last_error=row["last_error"],
        requested_at=row["requested_at"],
        updated_at=row["updated_at"],
        completed_at=row["completed_at"],
    )


def _pending_steps(previous: dict[str, dict[str, Any]] | None = None) -> dict[str, dict[str, Any]]:
    """Every step pending again, keeping the counts of earlier passes (they add up)."""
    previous = previous or {}
    return {s: {"status": "pending", "counts": dict(previous.get(s, {}).get("counts", {}))} for s in STEPS}


def add_counts(before: dict[str, int], more: dict[str, int]) -> dict[str, int]:
    return {k: int(before.get(k, 0)) + int(more.get(k, 0)) for k in {**before, **more}}


class DeletionJobs:
    """SQL of the deletion jobs; raises LookupError for an account that does not exist."""

    def __init__(self, db: AppDatabase) -> None:
        self.db = db

    async def open_job(self, account_id: str, requested_by: Requester) -> tuple[DeletionRecord, str | None]:
        """Start (or restart, when done) the account's job and revoke its API keys at once.

        Returns the job and, when the job is new, its status token (plaintext, shown once; only its hash is
        stored). A job in progress is returned as it is (asking again changes nothing); a done one runs
        again and keeps its token. Raises LookupError for an unknown account.
        """
        async with self.db.pool.connection() as conn, conn.transaction():
            cur = await conn.execute(ACCOUNT_FOR_UPDATE, (account_id,))
            if await cur.fetchone() is None:
                raise LookupError(account_id)
            await conn.execute(REVOKE_API_KEYS, (account_id,))
            await conn.execute(REVOKE_LLM_KEYS, (account_id,))  # its runs' LLM calls stop at once too
            cur = await conn.execute(SELECT_JOB_FOR_UPDATE, (account_id,))
            existing = await cur.fetchone()
            if existing is not None and existing["status"] == "in_progress":
                return record_from_row(existing), None
            token: str | None = None
            if existing is None:
                token = STATUS_TOKEN_PREFIX + secrets.token_urlsafe(32)
                cur = await conn.execute(
                    INSERT_JOB, (account_id, requested_by, hash_status_token(token), Jsonb(_pending_steps()))
                )
            else:
                steps = Jsonb(_pending_steps(existing["steps"]))
                cur = await conn.execute(REOPEN_JOB, (requested_by, steps, account_id))
            row = await cur.fetchone()
        assert row is not None
        return record_from_row(row), token

    async def get(self, account_id: str) -> DeletionRecord | None:
        async with self.db.pool.connection() as conn:
            cur = await conn.execute(SELECT_JOB, (account_id,))
            row = await cur.fetchone()
        return record_from_row(row) if row else None

    async def by_status_token(self, token: str) -> DeletionRecord | None:
        async with self.db.pool.connection() as conn:
            cur = await conn.execute(SELECT_JOB_BY_TOKEN, (hash_status_token(token),))
            row = await cur.fetchone()
        return record_from_row(row) if row else None

    async def open_accounts(self) -> list[str]:
        async with self.db.pool.connection() as conn:
            cur = await conn.execute(SELECT_OPEN_JOBS)
            return [str(r["billing_account_id"]) for r in await cur.fetchall()]

    @asynccontextmanager
    async def worker_lock(self, account_id: str) -> AsyncIterator[bool]:
        """Yields True when this process may work on the job now (no other holds it)."""
        async with self.db.pool.connection() as conn:
            cur = await conn.execute(TRY_LOCK, (account_id,))
            row = await cur.fetchone()
            got = bool(row and next(iter(row.values())))
            try:
                yield got
            finally:
                if got:
                    await conn.execute(UNLOCK, (account_id,))

    async def record_step(
        self,
        account_id: str,
        step: str,
        *,
        status: str,
        counts: dict[str, int],
        reason: str | None = None,
        replace: bool = False,
    ) -> None:
        """Mark a step done (or skipped): the counts of this pass are added to the earlier ones, or replace
        them (`replace`) when the source already reports totals."""
        async with self.db.pool.connection() as conn, conn.transaction():
            await self._record_step(
                conn, account_id, step, status=status, counts=counts, reason=reason, replace=replace
            )

    async def _record_step(
        self,
        conn: Any,
        account_id: str,
        step: str,
        *,
        status: str,
        counts: dict[str, int],
        reason: str | None,
        replace: bool = False,
    ) -> None:
        cur = await conn.execute(SELECT_JOB_FOR_UPDATE, (account_id,))
        row = await cur.fetchone()
        assert row is not None
        steps = dict(row["steps"])
        total = counts if replace else add_counts(steps.get(step, {}).get("counts", {}), counts)
        entry: dict[str, Any] = {"status": status, "counts": total}
        if reason:
            entry["reason"] = reason
        steps[step] = entry
        await conn.execute(UPDATE_STEPS, (Jsonb(steps), account_id))

    async def set_step_counts(self, account_id: str, step: str, counts: dict[str, int]) -> None:
        """A step still under way: its counts so far (the server's purge reports cumulative counts)."""
        async with self.db.pool.connection() as conn, conn.transaction():
            cur = await conn.execute(SELECT_JOB_FOR_UPDATE, (account_id,))
            row = await cur.fetchone()
            assert row is not None
            steps = dict(row["steps"])
            steps[step] = {**steps.get(step, {}), "counts": counts}
            await conn.execute(UPDATE_STEPS, (Jsonb(steps), account_id))

    async def delete_app_data(self, account_id: str) -> dict[str, int]:
        """The app step: the account's rows deleted or blanked and the step recorded done, in one transaction."""
        async with self.db.pool.connection() as conn, conn.transaction():
            counts = await delete_account_data(conn, account_id)
            await self._record_step(conn, account_id, "app", status="done", counts=counts, reason=None)
        return counts

    async def finish(self, account_id: str) -> None:
        async with self.db.pool.connection() as conn:
            await conn.execute(FINISH_JOB, (account_id,))

    async def record_error(self, account_id: str, message: str) -> None:
        async with self.db.pool.connection() as conn:
            await conn.execute(RECORD_ERROR, (message[:1000], account_id))
