"""Throwaway Postgres databases on the machine's server (127.0.0.1:5432, trust auth)."""

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg

ADMIN_URL = os.environ.get("TEST_POSTGRES_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


def database_url(name: str) -> str:
    """The URL of database `name` on the same server as ADMIN_URL."""
    base, _, _ = ADMIN_URL.rpartition("/")
    return f"{base}/{name}"


@contextmanager
def fresh_database(prefix: str = "cogni_test") -> Iterator[str]:
    """Create a uniquely named database, yield its URL, drop it (forcing out connections) after."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield database_url(name)
    finally:
        with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def every_row(url: str) -> dict[str, list[str]]:
    """Every row of every table of the database, found in the catalogue (so a table added later is read
    too), each row as its JSON text (bytea as hex); keyed by schema-qualified table name. For tests that
    look for a value (a secret, a user's content) anywhere in the database."""
    with psycopg.connect(url, autocommit=True) as conn:
        tables = conn.execute(
            "SELECT quote_ident(schemaname) || '.' || quote_ident(tablename) FROM pg_tables"
            " WHERE schemaname NOT IN ('pg_catalog', 'information_schema')"
        ).fetchall()
        return {
            str(name): [str(r[0]) for r in conn.execute(f"SELECT row_to_json(t)::text FROM {name} t")]
            for (name,) in tables
        }
