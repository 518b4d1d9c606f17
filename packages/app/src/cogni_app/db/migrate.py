"""Versioned SQL migrations: files `NNNN_name.sql` applied in order, each once, under an advisory lock.

Each file runs in its own transaction together with its `schema_migrations` row, so a failed file
leaves nothing half-applied. A session advisory lock makes concurrent `migrate` calls (several app
replicas starting at once) take turns; the later ones find nothing pending.
"""

import re
from dataclasses import dataclass
from importlib import resources

import psycopg
import structlog

MIGRATIONS_PACKAGE = "cogni_app.db.migrations"
MIGRATION_LOCK_KEY = 0x0C06_A11B  # pg_advisory_lock key for app-schema migrations
_FILE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str


def load_migrations() -> list[Migration]:
    """The packaged migrations, ascending by version; duplicate versions are a packaging bug."""
    found: dict[int, Migration] = {}
    for entry in resources.files(MIGRATIONS_PACKAGE).iterdir():
        match = _FILE.match(entry.name)
        if match is None:
            continue
        version = int(match.group(1))
        if version in found:
            raise RuntimeError(f"two migrations share version {version}")
        found[version] = Migration(version, match.group(2), entry.read_text(encoding="utf-8"))
    return [found[v] for v in sorted(found)]


async def migrate(url: str) -> None:
    """Apply every pending migration. Idempotent; concurrent callers serialise on an advisory lock."""
    migrations = load_migrations()
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        await conn.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK_KEY,))
        try:
            await conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " version integer PRIMARY KEY, name text NOT NULL,"
                " applied_at timestamptz NOT NULL DEFAULT now())"
            )
            cur = await conn.execute("SELECT version FROM schema_migrations")
            applied = {row[0] for row in await cur.fetchall()}
            for migration in migrations:
                if migration.version in applied:
                    continue
                async with conn.transaction():
                    await conn.execute(migration.sql.encode())
                    await conn.execute(
                        "INSERT INTO schema_migrations (version, name) VALUES (%s, %s)",
                        (migration.version, migration.name),
                    )
                log.info("migration applied", version=migration.version, name=migration.name)
        finally:
            await conn.execute("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK_KEY,))


async def applied_versions(url: str) -> list[int]:
    """Versions recorded in schema_migrations, ascending (empty before the first migrate)."""
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        cur = await conn.execute("SELECT to_regclass('schema_migrations') IS NOT NULL")
        row = await cur.fetchone()
        if not row or not row[0]:
            return []
        cur = await conn.execute("SELECT version FROM schema_migrations ORDER BY version")
        return [r[0] for r in await cur.fetchall()]
