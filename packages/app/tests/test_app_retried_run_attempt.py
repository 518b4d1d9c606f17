"""Issue 12, defect 9 (attempts): a run the Agent Server retried is billed under the attempt that made its
LLM call, on the stream and in the spend log alike, so the reconciler finds the stream's receipt and
charges nothing twice. Real processes: the Agent Server (jwt, Postgres) running a graph whose first attempt
dies of an injected database error, a real LiteLLM proxy with the spend-log sink, and the mock upstream."""

from __future__ import annotations

import sys
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from cogni_ai_core import RunContext
from cogni_app.billing import Accounts, Ledger
from cogni_app.executors import GraphRunRequest, LangGraphServerProvider
from cogni_app.reconcile import Reconciler, SinkTableSource
from cogni_app.relay import Relay
from cogni_app.service_auth import ServiceTokenMinter
from testsupport import ManagedProcess, free_port, fresh_database
from testsupport.app_db import open_migrated
from testsupport.llm_stack import LlmStack, running_llm_stack

pytestmark = [pytest.mark.integration, pytest.mark.proxy]
SECRET = "retry-" + "s" * 40
AUDIENCE = "cogni-agent-server"
PROJECT = Path(__file__).parent / "fixtures" / "retry" / "langgraph.json"


@pytest.fixture(scope="module")
def topology() -> Iterator[tuple[LlmStack, str]]:
    with running_llm_stack() as stack, fresh_database("cogni_retry_srv") as server_db:
        port = free_port()
        server = ManagedProcess(
            [sys.executable, "-m", "cogni_server", "serve", "--config", str(PROJECT), "--port", str(port)],
            env={**stack.env(), "LANGGRAPH_DATABASE_URL": server_db, "COGNI_AUTH_MODE": "jwt",
                 "COGNI_JWT_SECRET": SECRET, "COGNI_JWT_AUDIENCE": AUDIENCE, "COGNI_MAX_ATTEMPTS": "3"},
            name="agent-server",
        )  # fmt: skip
        try:
            server.wait_http(f"http://127.0.0.1:{port}/ok", timeout=60)
            yield stack, f"http://127.0.0.1:{port}"
        finally:
            server.stop()


async def test_a_retried_runs_call_is_billed_once_under_its_attempt(topology: tuple[LlmStack, str]) -> None:
    stack, server_url = topology
    with fresh_database("cogni_retry_app") as app_url:
        async with open_migrated(app_url) as db:
            accounts = Accounts(db)
            account = await accounts.create_account("acme", initial_credits=10_000_000)
            vkey = await accounts.create_virtual_key(account.id)
            ledger = Ledger(db, markup=Decimal("2.0"), is_free_model=lambda m: m == "free-chat")
            reconciler = Reconciler(ledger, SinkTableSource(stack.sink_database_url))
            provider = LangGraphServerProvider(server_url, tokens=ServiceTokenMinter(SECRET, audience=AUDIENCE))
            try:
                run_id = str(uuid.uuid4())
                request = GraphRunRequest(
                    graph_id="langgraph:retried_chat", model="gpt-4o-mini", run=RunContext(run_id=run_id),
                    billing_account_id=account.id, virtual_key_id=vkey.id, state_key="conv-retry",
                    input_messages=[{"role": "user", "content": "hello after a blip"}],
                )  # fmt: skip
                relay = Relay(ledger=ledger, reconciler=None)
                run = relay.start(provider.run_graph(request), run_id=run_id, billing_account_id=account.id)
                events = [event.type async for event in run.ui_events()]
                await run.finished()
            finally:
                await provider.aclose()
            assert events[-2:] == ["assistant_final", "done"], events
            [receipt] = await ledger.receipts_for_run(run_id)
            assert (receipt["attempt"], receipt["provenance"]) == (1, "stream")
            row = stack.wait_for_spend_row(receipt["litellm_call_id"])
            assert row["spend_logs_metadata"]["attempt"] == 1
            # The spend log and the stream agree on the key: reconciling adds nothing.
            assert await reconciler.reconcile_run(account.id, run_id) == 0
            assert len(await ledger.receipts_for_run(run_id)) == 1
