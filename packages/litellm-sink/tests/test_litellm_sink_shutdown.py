"""A proxy stopped with SIGTERM still writes the rows its sink had queued (flush on shutdown)."""

from __future__ import annotations

import os
import signal
import time

import httpx
import psycopg
import pytest

from cogni_litellm_sink.proxy import LiteLLMProxy
from cogni_litellm_sink.schema import DDL, TABLE
from testsupport import free_port, fresh_database
from testsupport.llm_stack import running_mock_llm, wait_for_spend_row

pytestmark = [pytest.mark.proxy, pytest.mark.integration]


def test_sigterm_waits_for_the_queued_row_to_be_written() -> None:
    with running_mock_llm() as mock_url, fresh_database("cogni_sink") as db_url:
        with psycopg.connect(db_url, autocommit=True) as conn:
            conn.execute(DDL)
        proxy = LiteLLMProxy(free_port(), mock_url, db_url).start()
        locker = psycopg.connect(db_url)
        try:
            # Hold the table so the sink's insert blocks: the row is queued/in flight when we stop.
            locker.execute(f"LOCK TABLE {TABLE} IN ACCESS EXCLUSIVE MODE")
            response = httpx.post(
                f"{proxy.base_url}/v1/chat/completions",
                headers={"Authorization": f"Bearer {proxy.master_key}"},
                json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hello"}]},
                timeout=30,
            )
            assert response.status_code == 200
            call_id = response.headers["x-litellm-call-id"]
            time.sleep(0.5)
            assert proxy.process is not None
            process = proxy.process
            os.killpg(process.pid, signal.SIGTERM)
            time.sleep(1.0)
            assert process.poll() is None, "the proxy exited without flushing its sink"
            locker.rollback()  # release the table: the pending insert goes through
            assert process.wait(timeout=15) == 0
            row = wait_for_spend_row(db_url, call_id, timeout=1)
            assert row["status"] == "success" and row["spend"] > 0
        finally:
            locker.close()
            proxy.stop()
