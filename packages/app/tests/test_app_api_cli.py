"""`cogni-app` as a user runs it: migrate a database, and refuse a bad configuration clearly."""

from __future__ import annotations

import os
import subprocess
import sys

import psycopg

from testsupport import fresh_database


def run_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "COGNI_JWT_SECRET", "COGNI_ADMIN_TOKEN")}
    return subprocess.run(
        [sys.executable, "-m", "cogni_app", *args],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_migrate_creates_the_ledger_and_is_idempotent() -> None:
    with fresh_database("cogni_app_cli") as url:
        for _ in range(2):
            done = run_cli("migrate", env={"DATABASE_URL": url})
            assert done.returncode == 0, done.stderr
            assert "up to date" in done.stdout
        with psycopg.connect(url) as conn:
            tables = {r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
        assert {"billing_accounts", "charge_receipts", "credit_ledger"} <= tables


def test_missing_database_url_and_weak_settings_are_start_up_errors() -> None:
    missing = run_cli("migrate", env={})
    assert missing.returncode == 2 and "database_url" in missing.stderr.lower()
    weak = run_cli(
        "serve", env={"DATABASE_URL": "postgresql://x/y", "COGNI_EXECUTOR": "server", "USER_PRICE_MARKUP_FACTOR": "0.5"}
    )
    assert weak.returncode == 2
    assert "USER_PRICE_MARKUP_FACTOR must be >= 1.0" in weak.stderr
