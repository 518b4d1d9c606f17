"""The LLM side of integration tests: the mock upstream + a real LiteLLM proxy + the spend-log sink database.

Plain context managers (no pytest import), shared by the sink's, graphs', app's and stack tests and
the demo script:

    with running_llm_stack() as stack:
        client = OpenAI(base_url=stack.litellm_base_url, api_key=stack.master_key)
        ...
        row = stack.wait_for_spend_row(call_id)

The mock runs as `python -m cogni_mock_llm` (this interpreter by default), the proxy through
`cogni_litellm_sink.proxy.LiteLLMProxy` (its cached venv).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg.rows import dict_row

from cogni_litellm_sink.config import FREE_ALIAS, PAID_ALIAS
from cogni_litellm_sink.proxy import LiteLLMProxy
from cogni_litellm_sink.schema import TABLE
from testsupport.databases import fresh_database
from testsupport.ports import free_port
from testsupport.processes import ManagedProcess


@contextmanager
def running_mock_llm(
    port: int | None = None, *, token_delay_ms: float = 0.0, hang_seconds: float = 30.0, python: str | None = None
) -> Iterator[str]:
    """Run the mock upstream as a process; yields its OpenAI base URL (`http://127.0.0.1:P/v1`)."""
    port = port or free_port()
    args = [python or sys.executable, "-m", "cogni_mock_llm", "--port", str(port),
            "--token-delay-ms", str(token_delay_ms), "--hang-seconds", str(hang_seconds)]  # fmt: skip
    process = ManagedProcess(args, name="mock-llm")
    try:
        process.wait_http(f"http://127.0.0.1:{port}/health", timeout=30.0)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        process.stop(timeout=10.0)
        process.log_path.unlink(missing_ok=True)


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
    keys_database_url: str | None = None,
) -> Iterator[LlmStack]:
    """Start mock + proxy (+ a fresh sink database unless one is given); stop and drop on exit.

    Pass `sink_database_url` to have the sink write into a database you own (e.g. the app's, for
    the reconciler); the sink creates its table there if missing. Pass `keys_database_url` (an app
    database with `llm_keys`) to turn on the per-account key hook (`cogni_litellm_sink.keyauth`).
    """
    with running_mock_llm(token_delay_ms=token_delay_ms, hang_seconds=hang_seconds) as mock_url:
        if sink_database_url is not None:
            with _proxy(mock_url, sink_database_url, version, keys_database_url) as stack:
                yield stack
        else:
            with (
                fresh_database("cogni_sink") as db_url,
                _proxy(mock_url, db_url, version, keys_database_url) as stack,
            ):
                yield stack


@contextmanager
def _proxy(mock_url: str, database_url: str, version: str | None, keys_url: str | None) -> Iterator[LlmStack]:
    with LiteLLMProxy(free_port(), mock_url, database_url, version=version, keys_database_url=keys_url) as proxy:
        yield LlmStack(
            litellm_base_url=proxy.base_url,
            master_key=proxy.master_key,
            sink_database_url=database_url,
            mock_base_url=mock_url,
            proxy=proxy,
        )
