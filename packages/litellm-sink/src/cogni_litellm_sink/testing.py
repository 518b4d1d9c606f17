"""Reusable test scaffolding: mock upstream + real LiteLLM proxy + sink database.

Plain context managers (no pytest import), shared by this package's tests and by the graphs, app
and stack tests:

    with running_llm_stack() as stack:
        client = OpenAI(base_url=stack.litellm_base_url, api_key=stack.master_key)
        ...
        row = stack.wait_for_spend_row(call_id)

The mock runs as `python -m cogni_mock_llm` (this interpreter by default), so this module imports
nothing of the mock's code.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from psycopg.rows import dict_row

from cogni_litellm_sink.config import FREE_ALIAS, PAID_ALIAS
from cogni_litellm_sink.processes import stop_process_group, wait_for_http_ok
from cogni_litellm_sink.proxy import LiteLLMProxy
from cogni_litellm_sink.schema import TABLE

ADMIN_URL_ENV = "TEST_POSTGRES_ADMIN_URL"
DEFAULT_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def running_mock_llm(
    port: int | None = None, *, token_delay_ms: float = 0.0, hang_seconds: float = 30.0, python: str | None = None
) -> Iterator[str]:
    """Run the mock upstream as a process; yields its OpenAI base URL (`http://127.0.0.1:P/v1`)."""
    port = port or free_port()
    log_path = Path(tempfile.mkstemp(prefix="cogni-mock-llm-", suffix=".log")[1])
    args = [python or sys.executable, "-m", "cogni_mock_llm", "--port", str(port),
            "--token-delay-ms", str(token_delay_ms), "--hang-seconds", str(hang_seconds)]  # fmt: skip
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(args, stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_for_http_ok(f"http://127.0.0.1:{port}/health", process, log_path, timeout=30.0, name="mock-llm")
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        stop_process_group(process, timeout=10.0)
        log_path.unlink(missing_ok=True)


@contextmanager
def fresh_sink_database(admin_url: str | None = None) -> Iterator[str]:
    """Create a uniquely named database for the sink, yield its URL, drop it afterwards."""
    admin = admin_url or os.environ.get(ADMIN_URL_ENV) or DEFAULT_ADMIN_URL
    name = f"cogni_sink_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{admin.rpartition('/')[0]}/{name}"
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def wait_for_spend_row(database_url: str, call_id: str, timeout: float = 15.0) -> dict[str, Any]:
    """Poll the sink table until the row for `call_id` exists (the sink writes asynchronously)."""
    deadline = time.monotonic() + timeout
    with psycopg.connect(database_url, autocommit=True, row_factory=dict_row) as conn:
        while True:
            try:
                row = conn.execute(f"SELECT * FROM {TABLE} WHERE call_id = %s", (call_id,)).fetchone()
            except psycopg.errors.UndefinedTable:
                row = None
            if row is not None:
                return dict(row)
            if time.monotonic() > deadline:
                raise TimeoutError(f"no {TABLE} row for call {call_id} within {timeout}s")
            time.sleep(0.1)


def spend_rows(database_url: str) -> list[dict[str, Any]]:
    """Every sink row, oldest first (empty when the table does not exist yet)."""
    with psycopg.connect(database_url, autocommit=True, row_factory=dict_row) as conn:
        try:
            return [dict(r) for r in conn.execute(f"SELECT * FROM {TABLE} ORDER BY inserted_at, call_id")]
        except psycopg.errors.UndefinedTable:
            return []


@dataclass
class LlmStack:
    """Addresses and keys of a running mock + LiteLLM proxy + sink database."""

    litellm_base_url: str
    master_key: str
    sink_database_url: str
    mock_base_url: str
    proxy: LiteLLMProxy = field(repr=False)
    paid_model: str = PAID_ALIAS.alias
    free_model: str = FREE_ALIAS.alias

    def env(self) -> dict[str, str]:
        """Environment variables other processes (graphs, app, server) use to reach this stack."""
        return {
            "LITELLM_BASE_URL": self.litellm_base_url,
            "LITELLM_API_KEY": self.master_key,
            "COGNI_SPEND_SINK_DATABASE_URL": self.sink_database_url,
        }

    def wait_for_spend_row(self, call_id: str, timeout: float = 15.0) -> dict[str, Any]:
        return wait_for_spend_row(self.sink_database_url, call_id, timeout)

    def spend_rows(self) -> list[dict[str, Any]]:
        return spend_rows(self.sink_database_url)


@contextmanager
def running_llm_stack(
    *,
    sink_database_url: str | None = None,
    token_delay_ms: float = 0.0,
    hang_seconds: float = 30.0,
    version: str | None = None,
) -> Iterator[LlmStack]:
    """Start mock + proxy (+ a fresh sink database unless one is given); stop and drop on exit.

    Pass `sink_database_url` to have the sink write into a database you own (e.g. the app's, for
    the reconciler); the sink creates its table there if missing.
    """
    with running_mock_llm(token_delay_ms=token_delay_ms, hang_seconds=hang_seconds) as mock_url:
        if sink_database_url is not None:
            with _proxy(mock_url, sink_database_url, version) as stack:
                yield stack
        else:
            with fresh_sink_database() as db_url, _proxy(mock_url, db_url, version) as stack:
                yield stack


@contextmanager
def _proxy(mock_url: str, database_url: str, version: str | None) -> Iterator[LlmStack]:
    with LiteLLMProxy(free_port(), mock_url, database_url, version=version) as proxy:
        yield LlmStack(
            litellm_base_url=proxy.base_url,
            master_key=proxy.master_key,
            sink_database_url=database_url,
            mock_base_url=mock_url,
            proxy=proxy,
        )
