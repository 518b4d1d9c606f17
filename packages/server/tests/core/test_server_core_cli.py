"""The CLI: ``migrate``, a clear error for an unreachable database, embedded Postgres by default."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import psycopg

from testsupport import ManagedProcess, free_port, fresh_database

from .conftest import PROJECT


def _cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    import os

    return subprocess.run(
        [sys.executable, "-m", "cogni_server", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_migrate_applies_once() -> None:
    with fresh_database("cogni_server_core_cli") as db:
        first = _cli("migrate", env={"LANGGRAPH_DATABASE_URL": db, "LANGGRAPH_CONFIG": str(PROJECT)})
        assert first.returncode == 0, first.stderr
        assert "0001_init" in first.stdout
        second = _cli("migrate", env={"LANGGRAPH_DATABASE_URL": db, "LANGGRAPH_CONFIG": "/nonexistent/langgraph.json"})
        assert second.returncode == 0 and "up to date" in second.stdout
        with psycopg.connect(db) as conn:
            tables = {r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
        assert {"threads", "runs", "assistants", "checkpoints", "checkpoint_writes", "store"} <= tables


def test_unreachable_database_is_a_clear_startup_error() -> None:
    port = free_port()
    result = _cli(
        "serve",
        "--config",
        str(PROJECT),
        "--port",
        str(free_port()),
        env={
            "LANGGRAPH_DATABASE_URL": f"postgresql://postgres@127.0.0.1:{port}/nope",
            "COGNI_DATABASE_CONNECT_TIMEOUT": "2",
        },
    )
    assert result.returncode == 2
    assert "unreachable" in result.stderr


def test_missing_config_is_a_clear_error() -> None:
    result = _cli("serve", "--config", "/nonexistent/langgraph.json", env={})
    assert result.returncode == 2 and "langgraph.json not found" in result.stderr


def test_serve_without_database_url_uses_embedded_postgres(tmp_path: Path) -> None:
    port = free_port()
    proc = ManagedProcess.python_module(
        "cogni_server",
        "serve",
        "--config",
        str(PROJECT),
        "--port",
        str(port),
        env={"LANGGRAPH_DATABASE_URL": "", "COGNI_DATA_DIR": str(tmp_path), "COGNI_AUTH_MODE": "none", "REDIS_URL": ""},
        name="embedded-server",
    )
    try:
        proc.wait_http(f"http://127.0.0.1:{port}/ok", timeout=90)
        health = httpx.get(f"http://127.0.0.1:{port}/health", timeout=10)
        assert health.json() == {"ok": True, "database": "ok"}
        out = httpx.post(
            f"http://127.0.0.1:{port}/runs/wait", json={"assistant_id": "echo", "input": {"messages": []}}, timeout=30
        )
        assert out.status_code == 200 and out.json()["count"] == 1
        assert (tmp_path / "embedded-pg").exists()
    finally:
        proc.stop()
