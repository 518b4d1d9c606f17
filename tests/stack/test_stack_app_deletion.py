"""A user's data deletion across the whole topology (docs/compliance.md, `# The app`): Postgres, the Agent
Server, `cogni-app serve` running graphs on it, a real LiteLLM proxy with the spend-log sink, the mock
upstream. A user with conversations on the server, receipts and spend logs asks for deletion; afterwards
no row of any table of the server's, the app's or the sink's database (read from the catalogue) holds the
user's content or ids, except the accounting rows that are kept without content; another user keeps
everything; and a reconcile afterwards bills nothing twice.
"""

from __future__ import annotations

import json
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import httpx
import psycopg
import pytest

from cogni_ai_core import derive_thread_id
from testsupport import ManagedProcess, free_port, fresh_database
from testsupport.databases import every_row
from testsupport.llm_stack import LlmStack, running_llm_stack

pytestmark = [pytest.mark.stack, pytest.mark.proxy, pytest.mark.integration]
ADMIN = "stack-admin-" + "d" * 32
SECRET = "stack-jwt-" + "e" * 40
OPERATOR = "stack-operator-" + "o" * 32

KEPT_APP_TABLES = {"billing_accounts", "credit_ledger", "charge_receipts", "billing_alerts", "charge_corrections"}
"""Accounting rows that keep the account's id (and its runs' ids), without content; plus the deletion record."""
RECORD_TABLES = {"app": {"account_deletions"}, "server": {"tenant_purges"}, "sink": set()}
KEPT_TABLES = {"app": KEPT_APP_TABLES, "server": set(), "sink": {"litellm_spend_logs"}}


@dataclass
class User:
    """What a user left behind: ids (allowed in the kept accounting rows) and content (allowed nowhere)."""

    account_id: str
    api_key: str
    ids: set[str] = field(default_factory=set)
    content: set[str] = field(default_factory=set)
    runs: list[str] = field(default_factory=list)


def new_user(stack: Stack, name: str) -> User:
    account = stack.admin("POST", "/v1/admin/accounts", json={"name": name, "initialCredits": 50_000_000}).json()
    key = stack.admin("POST", f"/v1/admin/accounts/{account['id']}/api-keys", json={"label": f"{name}-key"}).json()
    # the account's name and key label are the operator's words about the user: content too
    return User(account["id"], key["apiKey"], ids={account["id"], key["virtualKeyId"]}, content={name, f"{name}-key"})


def chat(stack: Stack, user: User, message: str, state_key: str | None = None) -> str:
    """One chat turn through the app on the Agent Server; returns the conversation's state key."""
    request_id = f"req-{uuid.uuid4().hex}"
    trace = uuid.uuid4().hex
    body: dict[str, Any] = {"message": message, "graphId": "langgraph:poet"}
    if state_key:
        body["stateKey"] = state_key
    headers = {
        "Authorization": f"Bearer {user.api_key}",
        "X-Request-Id": request_id,
        "traceparent": f"00-{trace}-00f067aa0ba902b7-01",
    }
    with stack.http.stream("POST", "/v1/chat", json=body, headers=headers) as response:
        assert response.status_code == 200, response.read().decode()
        events = [json.loads(line[5:]) for line in response.iter_lines() if line.startswith("data:")]
    assert events[-1]["type"] == "done", events
    run_id = response.headers["x-run-id"]
    key = response.headers["x-state-key"]
    user.runs.append(run_id)
    user.ids.add(run_id)
    user.content |= {message, request_id, trace, key, derive_thread_id(user.account_id, key)}
    return key


def table_rows(url: str) -> dict[str, list[str]]:
    """Every row of every table in the database (from the catalogue), each as its JSON text."""
    return {name.rpartition(".")[2]: rows for name, rows in every_row(url).items()}


def where(stack: Stack, needles: set[str]) -> dict[str, set[str]]:
    """{database: tables with a row containing any of the needles}, as text or inside a bytea column (the
    JSON of a row shows bytes as hex: checkpoint blobs and writes)."""
    patterns = needles | {n.encode().hex() for n in needles}
    found: dict[str, set[str]] = {}
    for db, url in stack.databases().items():
        for table, rows in table_rows(url).items():
            if any(needle in row for row in rows for needle in patterns):
                found.setdefault(db, set()).add(table)
    return found


def ledger(stack: Stack, account_id: str) -> tuple[int, int, int]:
    with psycopg.connect(stack.app_db, autocommit=True) as conn:
        row = conn.execute(
            "SELECT (SELECT coalesce(sum(amount), 0) FROM credit_ledger WHERE billing_account_id = %(a)s),"
            " (SELECT count(*) FROM credit_ledger WHERE billing_account_id = %(a)s),"
            " (SELECT balance_credits FROM billing_accounts WHERE id = %(a)s)",
            {"a": account_id},
        ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1]), int(row[2])


def wait_for(check: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        time.sleep(0.2)


@dataclass
class Processes:
    """The server and the app as processes that a test may kill and start again (same ports, same databases)."""

    llm: LlmStack
    server_db: str
    app_db: str
    server_port: int = field(default_factory=free_port)
    app_port: int = field(default_factory=free_port)
    server: ManagedProcess | None = None
    app: ManagedProcess | None = None

    def start_server(self) -> None:
        self.server = ManagedProcess(
            [sys.executable, "-m", "cogni_server", "serve", "--config", "packages/graphs/langgraph.json",
             "--port", str(self.server_port)],
            env={**self.llm.env(), "LANGGRAPH_DATABASE_URL": self.server_db, "COGNI_AUTH_MODE": "jwt",
                 "COGNI_JWT_SECRET": SECRET, "COGNI_JWT_AUDIENCE": "cogni-agent-server",
                 "COGNI_OPERATOR_TOKEN": OPERATOR},
            name="agent-server",
        )  # fmt: skip
        self.server.wait_http(f"http://127.0.0.1:{self.server_port}/ok", timeout=60)

    def start_app(self) -> None:
        self.app = ManagedProcess(
            [sys.executable, "-m", "cogni_app", "serve", "--port", str(self.app_port)],
            env={**self.llm.env(), "DATABASE_URL": self.app_db,
                 "LANGGRAPH_SERVER_URL": f"http://127.0.0.1:{self.server_port}",
                 "COGNI_EXECUTOR": "server", "COGNI_JWT_SECRET": SECRET, "COGNI_ADMIN_TOKEN": ADMIN,
                 "COGNI_SERVER_OPERATOR_TOKEN": OPERATOR, "COGNI_RECONCILE_DELAY_SECONDS": "0.2",
                 "COGNI_RECONCILE_INTERVAL_SECONDS": "0", "COGNI_DELETION_RETRY_SECONDS": "0.5"},
            name="cogni-app",
        )  # fmt: skip
        self.app.wait_http(f"http://127.0.0.1:{self.app_port}/healthz", timeout=60)

    def stop(self) -> None:
        for process in (self.app, self.server):
            if process is not None:
                process.stop()


@dataclass
class Stack:
    llm: LlmStack
    app_db: str
    server_db: str
    http: httpx.Client
    processes: Processes

    def admin(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return self.http.request(method, path, headers={"Authorization": f"Bearer {ADMIN}"}, **kwargs)

    def databases(self) -> dict[str, str]:
        return {"server": self.server_db, "app": self.app_db, "sink": self.llm.sink_database_url}


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    with (
        running_llm_stack() as llm,
        fresh_database("cogni_del_srv") as server_db,
        fresh_database("cogni_del_app") as app_db,
    ):
        processes = Processes(llm=llm, server_db=server_db, app_db=app_db)
        try:
            processes.start_server()
            processes.start_app()
            with httpx.Client(base_url=f"http://127.0.0.1:{processes.app_port}", timeout=60.0) as http:
                yield Stack(llm=llm, app_db=app_db, server_db=server_db, http=http, processes=processes)
        finally:
            processes.stop()


def settle(stack: Stack, users: list[User]) -> None:
    """Until every run's calls are in the spend log and billed (the app's relay is idle)."""

    def billed() -> bool:
        rows = stack.llm.spend_rows()
        with psycopg.connect(stack.app_db, autocommit=True) as conn:
            receipts = {r[0] for r in conn.execute("SELECT litellm_call_id FROM charge_receipts")}
        runs = {run for user in users for run in user.runs}
        calls = {r["call_id"] for r in rows if r["spend_logs_metadata"].get("run_id") in runs}
        seen = {r["spend_logs_metadata"].get("run_id") for r in rows if r["call_id"] in calls}
        return seen == runs and calls <= receipts

    wait_for(billed, 30, "the runs' calls were not all in the spend log and billed")
    wait_for(lambda: "cogni_app_relay_runs_in_flight 0.0" in stack.http.get("/metrics").text, 20, "runs in flight")


def test_a_users_data_deletion_leaves_only_accounting_rows_without_content(stack: Stack) -> None:
    alice, bob = new_user(stack, f"alice-{uuid.uuid4().hex[:8]}"), new_user(stack, f"bob-{uuid.uuid4().hex[:8]}")
    for user in (alice, bob):
        key = chat(stack, user, f"call core__get_current_time then write a poem about {user.account_id[:8]}-zebra")
        chat(stack, user, f"and another verse on {uuid.uuid4().hex}", state_key=key)
    settle(stack, [alice, bob])
    assert "server" in where(stack, alice.content), "alice's conversation is not on the server: nothing to test"
    assert "litellm_spend_logs" in where(stack, alice.content)["sink"]  # request and trace ids in the spend log
    ledger_before = ledger(stack, alice.account_id)
    calls = len([r for r in stack.llm.spend_rows() if r["end_user"] == alice.account_id])
    bob_before = where(stack, bob.content | bob.ids)

    # the user asks; their key stops working at once, the status token reads the job
    asked = stack.http.delete("/v1/account/data", headers={"Authorization": f"Bearer {alice.api_key}"})
    assert asked.status_code == 202, asked.text
    token = asked.json()["statusToken"]
    assert asked.json()["requestedBy"] == "user" and token.startswith("cogni_del_")
    assert stack.http.get("/v1/models", headers={"Authorization": f"Bearer {alice.api_key}"}).status_code == 401

    def done() -> dict[str, Any] | None:
        status = stack.http.get("/v1/account/data/deletion", headers={"Authorization": f"Bearer {token}"})
        assert status.status_code == 200, status.text
        return status.json() if status.json()["status"] == "done" else None

    record = wait_for(done, 60, "the deletion did not finish")
    steps = record["steps"]
    assert {s: steps[s]["status"] for s in steps} == {"server": "done", "app": "done", "spend_log": "done"}
    assert steps["server"]["counts"]["threads"] == 1 and steps["server"]["counts"]["runs"] == 2
    assert steps["app"]["counts"]["api_keys"] == 1 and steps["app"]["counts"]["billing_accounts"] == 1
    assert steps["app"]["counts"]["charge_receipts"] == calls >= 3  # the client's request ids blanked
    assert steps["spend_log"]["counts"]["litellm_spend_logs"] == calls
    operator_view = stack.admin("GET", f"/v1/admin/accounts/{alice.account_id}/data/deletion").json()
    assert operator_view == record
    assert stack.http.get(f"/v1/admin/accounts/{alice.account_id}/data/deletion").status_code == 401
    bob_asks = stack.http.get("/v1/account/data/deletion", headers={"Authorization": f"Bearer {bob.api_key}"})
    assert bob_asks.status_code == 404 and bob_asks.json()["error"] == "not_found"  # bob asked for nothing
    forged = stack.http.get("/v1/account/data/deletion", headers={"Authorization": "Bearer cogni_del_forged"})
    assert forged.status_code == 404
    assert stack.admin("DELETE", "/v1/admin/accounts/no-such-account/data").status_code == 404

    # nothing of alice's content anywhere; her ids only in the kept accounting rows and the deletion records
    assert where(stack, alice.content) == {}
    for db, tables in where(stack, alice.ids).items():
        assert tables <= KEPT_TABLES[db] | RECORD_TABLES[db], f"{db} still holds alice's ids in {tables}"
    with psycopg.connect(stack.llm.sink_database_url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT spend, total_tokens, spend_logs_metadata, request_tags, provider_response_id"
            " FROM litellm_spend_logs WHERE end_user = %s",
            (alice.account_id,),
        ).fetchall()
    assert len(rows) == calls and all(Decimal(r[0]) > 0 and r[1] > 0 for r in rows)  # the money stays
    assert all(set(r[2]) <= {"run_id", "attempt", "billing_account_id", "virtual_key_id", "graph_id",
                             "executor_type"} and r[3] == [] and r[4] is None for r in rows)  # fmt: skip
    # bob keeps everything
    assert where(stack, bob.content | bob.ids) == bob_before

    # accounts still balance, and a reconcile afterwards bills nothing twice
    for run_id in alice.runs:
        again = stack.admin("POST", f"/v1/admin/runs/{run_id}/reconcile", params={"accountId": alice.account_id})
        assert again.status_code == 200 and again.json()["created"] == 0, again.text
    assert ledger(stack, alice.account_id) == ledger_before
    balance = stack.admin("GET", f"/v1/admin/accounts/{alice.account_id}/balance").json()["balanceCredits"]
    assert balance == ledger_before[2] == ledger_before[0]

    # an operator may run it again (late rows): the same record, counts unchanged where nothing was left
    rerun = stack.admin("DELETE", f"/v1/admin/accounts/{alice.account_id}/data")
    assert rerun.status_code == 202 and rerun.json()["requestedBy"] == "operator"
    assert "statusToken" not in rerun.json()  # the user's token still reads the job
    again_record = wait_for(done, 60, "the second deletion did not finish")
    assert again_record["steps"]["app"]["counts"] == steps["app"]["counts"]
    assert again_record["steps"]["spend_log"]["counts"] == steps["spend_log"]["counts"]
    assert where(stack, alice.content) == {}


def test_a_deletion_interrupted_by_a_crash_is_finished_when_the_app_starts_again(stack: Stack) -> None:
    carol = new_user(stack, f"carol-{uuid.uuid4().hex[:8]}")
    chat(stack, carol, f"a secret for the crash test {uuid.uuid4().hex}")
    settle(stack, [carol])
    processes = stack.processes
    assert processes.server is not None and processes.app is not None

    # the server is down: the job's first step fails and is retried, later steps wait
    processes.server.stop()
    asked = stack.http.delete("/v1/account/data", headers={"Authorization": f"Bearer {carol.api_key}"})
    assert asked.status_code == 202, asked.text
    token = asked.json()["statusToken"]

    def failing() -> dict[str, Any] | None:
        body = stack.http.get("/v1/account/data/deletion", headers={"Authorization": f"Bearer {token}"}).json()
        return body if body["lastError"] else None

    stalled = wait_for(failing, 30, "the deletion did not record the server's absence")
    assert stalled["status"] == "in_progress" and "unreachable" in stalled["lastError"]
    assert stalled["steps"]["app"]["status"] == "pending"

    # the app crashes; both come back; nobody asks: the app's start-up resumes the job and finishes it
    processes.app.kill()
    processes.start_server()
    processes.start_app()

    def finished() -> bool:
        with psycopg.connect(stack.app_db, autocommit=True) as conn:
            row = conn.execute(
                "SELECT status FROM account_deletions WHERE billing_account_id = %s", (carol.account_id,)
            ).fetchone()
        return row is not None and row[0] == "done"

    wait_for(finished, 60, "the restarted app did not finish the deletion")
    record = stack.http.get("/v1/account/data/deletion", headers={"Authorization": f"Bearer {token}"}).json()
    assert record["steps"]["server"]["counts"]["threads"] == 1 and record["passes"] >= 2
    assert where(stack, carol.content) == {}
