"""The whole topology as processes: Postgres, the Agent Server, `cogni-app serve`, a real LiteLLM proxy
with the spend-log sink, and the mock upstream. What a paying user and an operator would notice:
answers stream to `done`, every LLM call is charged exactly once at LiteLLM's cost x markup, a client
that hangs up is billed in full, trace and request ids reach the spend log, and the reconciler fills in
what the stream lost, once.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import httpx
import psycopg
import pytest
from psycopg.rows import dict_row

from cogni_ai_core import price_usage
from testsupport import ManagedProcess, free_port, fresh_database
from testsupport.llm_stack import LlmStack, running_llm_stack

pytestmark = [pytest.mark.stack, pytest.mark.proxy, pytest.mark.integration]
ADMIN = "stack-admin-" + "k" * 32
SECRET = "stack-jwt-" + "s" * 40
MARKUP = Decimal("2.0")


@dataclass
class Stack:
    llm: LlmStack
    app_db: str
    http: httpx.Client

    def admin(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return self.http.request(method, path, headers={"Authorization": f"Bearer {ADMIN}"}, **kwargs)

    def account(self, credits: int = 50_000_000) -> tuple[str, str]:
        account = self.admin("POST", "/v1/admin/accounts", json={"name": "stack", "initialCredits": credits}).json()
        key = self.admin("POST", f"/v1/admin/accounts/{account['id']}/api-keys", json={}).json()
        return account["id"], key["apiKey"]

    def balance(self, account_id: str) -> int:
        return int(self.admin("GET", f"/v1/admin/accounts/{account_id}/balance").json()["balanceCredits"])

    def sink_rows(self, account_id: str, run_id: str, count: int, timeout: float = 20.0) -> list[dict[str, Any]]:
        def fetch() -> list[dict[str, Any]]:
            return [
                r for r in self.llm.spend_rows()
                if r["end_user"] == account_id and r["spend_logs_metadata"].get("run_id") == run_id
            ]  # fmt: skip

        return poll_rows(fetch, count, timeout)

    def receipts(self, run_id: str, count: int, timeout: float = 20.0) -> list[dict[str, Any]]:
        def fetch() -> list[dict[str, Any]]:
            with psycopg.connect(self.app_db, row_factory=dict_row) as conn:
                rows = conn.execute("SELECT * FROM charge_receipts WHERE run_id = %s", (run_id,)).fetchall()
            return [dict(r) for r in rows]

        return poll_rows(fetch, count, timeout)

    def wait_idle(self, timeout: float = 20.0) -> None:
        """Until the app's relay has no run in flight (pump, billing and post-run reconcile all done)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            metrics = self.http.get("/metrics").text
            if "cogni_app_relay_runs_in_flight 0.0" in metrics:
                return
            time.sleep(0.1)
        raise TimeoutError("the app still has runs in flight")


def poll_rows(fetch: Callable[[], list[dict[str, Any]]], count: int, timeout: float) -> list[dict[str, Any]]:
    """`fetch()` until it returns at least `count` rows or `timeout` passes; the last answer either way."""
    deadline = time.monotonic() + timeout
    while True:
        rows = fetch()
        if len(rows) >= count or time.monotonic() > deadline:
            return rows
        time.sleep(0.1)


def expected_credits(spend: Decimal) -> int:
    """What the ledger must charge for LiteLLM's recorded spend (the arithmetic is pinned in ai-core's tests)."""
    return price_usage(Decimal(spend), markup=MARKUP, is_free=False).credits


def stream_chat(
    stack: Stack, key: str, body: dict[str, Any], headers: dict[str, str] | None = None, stop_after: int | None = None
) -> tuple[httpx.Response, list[dict[str, Any]]]:
    events: list[dict[str, Any]] = []
    all_headers = {"Authorization": f"Bearer {key}", **(headers or {})}
    with stack.http.stream("POST", "/v1/chat", json=body, headers=all_headers) as response:
        assert response.status_code == 200, response.read().decode()
        for line in response.iter_lines():
            if line.startswith("data:"):
                events.append(json.loads(line[5:]))
                if stop_after is not None and len(events) >= stop_after:
                    break  # hang up mid-stream: the context manager closes the connection
    return response, events


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    with (
        running_llm_stack() as llm,
        fresh_database("cogni_stack_srv") as server_db,
        fresh_database("cogni_stack_app") as app_db,
    ):
        server_port, app_port = free_port(), free_port()
        server = ManagedProcess(
            [sys.executable, "-m", "cogni_server", "serve", "--config", "packages/graphs/langgraph.json",
             "--port", str(server_port)],
            env={**llm.env(), "LANGGRAPH_DATABASE_URL": server_db, "COGNI_AUTH_MODE": "jwt",
                 "COGNI_JWT_SECRET": SECRET, "COGNI_JWT_AUDIENCE": "cogni-agent-server"},
            name="agent-server",
        )  # fmt: skip
        app = None
        try:
            server.wait_http(f"http://127.0.0.1:{server_port}/ok", timeout=60)
            app = ManagedProcess(
                [sys.executable, "-m", "cogni_app", "serve", "--port", str(app_port)],
                env={**llm.env(), "DATABASE_URL": app_db, "LANGGRAPH_SERVER_URL": f"http://127.0.0.1:{server_port}",
                     "COGNI_EXECUTOR": "server", "COGNI_JWT_SECRET": SECRET, "COGNI_ADMIN_TOKEN": ADMIN,
                     "USER_PRICE_MARKUP_FACTOR": str(MARKUP), "COGNI_RECONCILE_DELAY_SECONDS": "0.5",
                     "COGNI_RECONCILE_INTERVAL_SECONDS": "0"},
                name="cogni-app",
            )  # fmt: skip
            app.wait_http(f"http://127.0.0.1:{app_port}/healthz", timeout=60)
            with httpx.Client(base_url=f"http://127.0.0.1:{app_port}", timeout=60.0) as http:
                yield Stack(llm=llm, app_db=app_db, http=http)
        finally:
            if app is not None:
                app.stop()
            server.stop()


def test_chat_is_answered_and_every_llm_call_has_exactly_one_receipt_at_cost_times_markup(stack: Stack) -> None:
    account_id, key = stack.account()
    trace = "4bf92f3577b34da6a3ce929d0e0e4736"
    response, events = stream_chat(
        stack,
        key,
        {"message": "call core__get_current_time then write a poem", "graphId": "langgraph:poet"},
        headers={"X-Request-Id": "req-stack-1", "traceparent": f"00-{trace}-00f067aa0ba902b7-01"},
    )
    run_id = response.headers["x-run-id"]
    assert [e["type"] for e in events][-2:] == ["assistant_final", "done"]
    assert [e["toolName"] for e in events if e["type"] == "tool_call_start"] == ["core__get_current_time"]

    rows = stack.sink_rows(account_id, run_id, 2)
    assert len(rows) == 2 and {r["status"] for r in rows} == {"success"}
    receipts = stack.receipts(run_id, 2)
    by_call = {r["litellm_call_id"]: r for r in receipts}
    assert len(receipts) == len(by_call) == 2  # one receipt per call, no duplicates
    for row in rows:
        receipt = by_call[row["call_id"]]
        assert receipt["charged_credits"] == expected_credits(row["spend"]) > 0
        assert receipt["provenance"] == "stream" and receipt["executor_type"] == "langgraph_server"
        metadata = row["spend_logs_metadata"]
        assert metadata["request_id"] == "req-stack-1" and metadata["trace_id"] == trace
        assert metadata["executor_type"] == "langgraph_server" and metadata["graph_id"] == "langgraph:poet"
    balance = stack.balance(account_id)
    assert balance == 50_000_000 - sum(r["charged_credits"] for r in receipts)


def test_a_client_that_hangs_up_mid_stream_is_billed_in_full(stack: Stack) -> None:
    account_id, key = stack.account()
    long_answer = "tell me a long story [mock:tokens=150] [mock:delay_ms=20]"
    started = time.monotonic()
    response, events = stream_chat(stack, key, {"message": long_answer}, stop_after=3)
    run_id = response.headers["x-run-id"]
    assert time.monotonic() - started < 2.5  # we really left early (the whole answer takes ~3 s)
    assert "done" not in [e["type"] for e in events]

    [row] = stack.sink_rows(account_id, run_id, 1)
    [receipt] = stack.receipts(run_id, 1)
    assert row["status"] == "success" and row["error_code"] is None  # the model finished: nobody hung up on it
    assert row["completion_tokens"] >= 150 and receipt["output_tokens"] == row["completion_tokens"]
    assert receipt["charged_credits"] == expected_credits(row["spend"])


def test_reconciler_fills_in_lost_usage_once(stack: Stack) -> None:
    account_id, key = stack.account()
    response, events = stream_chat(
        stack, key, {"message": 'call core__calculator {"expression": "6*7"}', "graphId": "langgraph:research"}
    )
    run_id = response.headers["x-run-id"]
    assert events[-1]["type"] == "done"
    assert len(stack.receipts(run_id, 2)) == 2
    stack.wait_idle()
    charged_balance = stack.balance(account_id)

    # Simulate usage events lost on the way: the run's receipts and ledger rows vanish, the balance is restored.
    with psycopg.connect(stack.app_db) as conn:
        ids = [r[0] for r in conn.execute("SELECT id FROM charge_receipts WHERE run_id = %s", (run_id,))]
        conn.execute("DELETE FROM credit_ledger WHERE reason = 'charge_receipt' AND reference = ANY(%s)", (ids,))
        conn.execute("DELETE FROM charge_receipts WHERE run_id = %s", (run_id,))
        conn.execute("UPDATE billing_accounts SET balance_credits = 50000000 WHERE id = %s", (account_id,))

    first = stack.admin("POST", f"/v1/admin/runs/{run_id}/reconcile", params={"accountId": account_id}).json()
    second = stack.admin("POST", f"/v1/admin/runs/{run_id}/reconcile", params={"accountId": account_id}).json()
    assert (first["created"], second["created"]) == (2, 0)
    receipts = stack.receipts(run_id, 2)
    assert {r["provenance"] for r in receipts} == {"reconcile"} and len(receipts) == 2
    rows = {r["call_id"]: r for r in stack.sink_rows(account_id, run_id, 2)}
    assert {r["litellm_call_id"]: r["charged_credits"] for r in receipts} == {
        call_id: expected_credits(row["spend"]) for call_id, row in rows.items()
    }
    balance = stack.balance(account_id)
    assert balance == charged_balance  # charged again exactly what the stream had charged
