"""Versioned schema migrations: numbered SQL files in ``storage/sql``, applied once, in order.

A small runner instead of alembic: it needs no SQLAlchemy engine and adds milliseconds, not hundreds
of them, to every start-up (migrations run at start-up and by ``cogni-server migrate``). Concurrent
starters serialise on a Postgres advisory lock, so several instances can boot against one database.
"""

from __future__ import annotations

import asyncio
import itertools
import re
from dataclasses import dataclass
from importlib import resources

import psycopg

_LOCK_KEY = 0x636F676E69  # "cogni"
_TRY_LOCK = "SELECT pg_try_advisory_lock(%s)"
_FILE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str


def available() -> list[Migration]:
    """Every migration shipped with the package, ordered by version."""
    found = []
    for entry in resources.files("cogni_server.storage.sql").iterdir():
        match = _FILE.match(entry.name)
        if match:
            found.append(Migration(int(match[1]), match[2], entry.read_text()))
    return sorted(found, key=lambda m: m.version)


async def migrate(url: str) -> list[str]:
    """Apply pending migrations; return the names applied (empty when up to date)."""
    applied: list[str] = []
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        # poll, never wait inside pg_advisory_lock: a waiting statement holds a snapshot, which a
        # concurrent instance's CREATE INDEX CONCURRENTLY (the checkpointer's setup) waits for,
        # and Postgres would break that cycle by failing this start-up with DeadlockDetected
        for _ in itertools.count():  # until the lock is ours
            row = await (await conn.execute(_TRY_LOCK, (_LOCK_KEY,))).fetchone()
            if row is not None and row[0]:
                break
            await asyncio.sleep(0.1)
        try:
            await conn.execute(
                "CREATE TABLE IF NOT EXISTS cogni_schema_migrations ("
                " version integer PRIMARY KEY, name text NOT NULL,"
                " applied_at timestamptz NOT NULL DEFAULT now())"
            )
            cur = await conn.execute("SELECT version FROM cogni_schema_migrations")
            done = {row[0] for row in await cur.fetchall()}
            for migration in available():
                if migration.version in done:
                    continue
                async with conn.transaction():
                    await conn.execute(migration.sql.encode())
                    await conn.execute(
                        "INSERT INTO cogni_schema_migrations (version, name) VALUES (%s, %s)",
                        (migration.version, migration.name),
                    )
                applied.append(f"{migration.version:04d}_{migration.name}")
        finally:
            await conn.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_KEY,))
    return applied
