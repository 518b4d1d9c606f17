"""One user's data deletion asked of two app processes at once (`cogni-app serve` twice on one app database,
graphs on a real Agent Server): the user sends `DELETE /v1/account/data` to both at the same moment and
both apps' job runners go for the job. There is one job, worked by one process at a time and done once:
the server's purge ran one pass, the app's rows were deleted once (counts not doubled), the status reads
the same from both apps, the deletion record is one row, the ledger and receipts stay and still balance,
and the other user keeps everything."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from langgraph_sdk import get_client
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from cogni_app.service_auth import ServiceTokenMinter
from cogni_litellm_sink.mapping import SpendRow
from cogni_litellm_sink.schema import DDL, UPSERT
from testsupport import ManagedProcess, free_port, fresh_database, serve_asgi

pytestmark = pytest.mark.integration
SECRET = "deletion-conc-" + "s" * 40
AUDIENCE = "cogni-agent-server"
ADMIN = "deletion-conc-admin-" + "a" * 32
OPERATOR = "deletion-conc-operator-" + "o" * 32
SERVER_PROJECT = Path(__file__).resolve().parents[2] / "server" / "tests" / "fixtures" / "project" / "purge.json"
HI = {"messages": [{"role": "user", "content": "hi"}]}


@dataclass
class Topology:
    server_url: str
    server_db: str
    app_db: str
    apps: list[httpx.Client]
    app_processes: list[ManagedProcess]

    def admin(self, method: str, path: str, app: int = 0, **kwargs: Any) -> httpx.Response:
        return self.apps[app].request(method, path, headers={"Authorization": f"Bearer {ADMIN}"}, **kwargs)


@pytest.fixture
def topology() -> Iterator[Topology]:
    async def info(_: Request) -> JSONResponse:  # all the app needs of LiteLLM to start
        entry = {"model_name": "gpt-4o-mini", "litellm_params": {"model": "openai/gpt-4o-mini"}, "model_info": {}}
        return JSONResponse({"data": [entry]})

    with (
        serve_asgi(Starlette(routes=[Route("/model/info", info)]), lifespan="off") as litellm,
        fresh_database("cogni_delc_srv") as server_db,
        fresh_database("cogni_delc_app") as app_db,
    ):
        with psycopg.connect(app_db, autocommit=True) as conn:
            conn.execute(DDL.encode())  # the spend-log sink's table, beside the app's
        server_port, app_ports = free_port(), [free_port(), free_port()]
        server_url = f"http://127.0.0.1:{server_port}"
        server_env = {
            "LANGGRAPH_DATABASE_URL": server_db, "COGNI_AUTH_MODE": "jwt", "COGNI_JWT_SECRET": SECRET,
            "COGNI_JWT_AUDIENCE": AUDIENCE, "COGNI_OPERATOR_TOKEN": OPERATOR, "REDIS_URL": "",
            "LANGGRAPH_API_KEY": "", "COGNI_PURGE_STOP_SECONDS": "30",
        }  # fmt: skip
        app_env = {
            "DATABASE_URL": app_db, "LITELLM_BASE_URL": litellm, "LITELLM_API_KEY": "sk-delc",
            "COGNI_ADMIN_TOKEN": ADMIN, "COGNI_JWT_SECRET": SECRET, "COGNI_EXECUTOR": "server",
            "LANGGRAPH_SERVER_URL": server_url, "COGNI_SERVER_OPERATOR_TOKEN": OPERATOR,
            "COGNI_SPEND_SINK_DATABASE_URL": app_db, "COGNI_RECONCILE_INTERVAL_SECONDS": "0",
            "COGNI_DELETION_RETRY_SECONDS": "0.2",
        }  # fmt: skip
        serve = ["serve", "--config", str(SERVER_PROJECT), "--port", str(server_port)]
        processes = [ManagedProcess.python_module("cogni_server", *serve, env=server_env, name="agent-server")]
        for n, port in enumerate(app_ports):  # all three start at once
            args = ["serve", "--port", str(port)]
            processes.append(ManagedProcess.python_module("cogni_app", *args, env=app_env, name=f"cogni-app-{n}"))
        try:
            processes[0].wait_http(f"{server_url}/ok", timeout=60)
            for proc, port in zip(processes[1:], app_ports, strict=True):
                proc.wait_http(f"http://127.0.0.1:{port}/healthz", timeout=60)
            clients = [httpx.Client(base_url=f"http://127.0.0.1:{p}", timeout=60.0) for p in app_ports]
            try:
                yield Topology(server_url, server_db, app_db, clients, processes[1:])
            finally:
                for client in clients:
                    client.close()
        finally:
            for proc in reversed(processes):
                proc.stop()


@dataclass
class User:
    account_id: str
    api_key: str
    threads: list[str]


def new_user(topology: Topology, name: str) -> User:
    account = topology.admin("POST", "/v1/admin/accounts", json={"name": name, "initialCredits": 10_000_000}).json()
    key = topology.admin("POST", f"/v1/admin/accounts/{account['id']}/api-keys", json={"label": name}).json()
    return User(account["id"], key["apiKey"], [])


def bill(topology: Topology, user: User, calls: int) -> None:
    """Calls of one run in the spend log, reconciled into receipts and ledger rows."""
    run_id = str(uuid.uuid4())
    ended = datetime.now(UTC) - timedelta(seconds=5)
    with psycopg.connect(topology.app_db, autocommit=True) as conn:
        for n in range(calls):
            row = SpendRow(
                call_id=f"{run_id}-{n}", provider_response_id=f"chatcmpl-{run_id}-{n}", end_user=user.account_id,
                spend=Decimal("0.0021"), prompt_tokens=10, completion_tokens=20, total_tokens=30,
                model="gpt-4o-mini", model_group="paid-chat", status="success", error_code=None,
                spend_logs_metadata={"run_id": run_id, "attempt": 0, "billing_account_id": user.account_id,
                                     "graph_id": "langgraph:chat", "request_id": f"secret-{user.account_id}"},
                request_tags=["words"], start_time=ended - timedelta(seconds=1), end_time=ended,
            )  # fmt: skip
            conn.execute(UPSERT, row.values())
    done = topology.admin("POST", f"/v1/admin/runs/{run_id}/reconcile", params={"accountId": user.account_id})
    assert done.status_code == 200 and done.json()["created"] == calls, done.text


async def converse(topology: Topology, user: User) -> None:
    """The user's data on the Agent Server, as the app's service token writes it (tenant = the account)."""
    token = ServiceTokenMinter(SECRET, audience=AUDIENCE).mint(user.account_id)
    client = get_client(url=topology.server_url, headers={"Authorization": f"Bearer {token}"})
    try:
        thread = await client.threads.create(metadata={"who": user.account_id})
        await client.runs.wait(thread["thread_id"], "echo", input=HI)
        await client.store.put_item(["profile"], "name", {"name": user.account_id})
        await client.crons.create_for_thread(thread["thread_id"], "echo", schedule="0 0 1 1 *", input=HI)
        user.threads.append(thread["thread_id"])
    finally:
        await client.aclose()


async def hold_a_run(topology: Topology, user: User, release: Path) -> None:
    """A run of the user's that ignores its cancellation until released: the server's purge waits for it."""
    token = ServiceTokenMinter(SECRET, audience=AUDIENCE).mint(user.account_id)
    client = get_client(url=topology.server_url, headers={"Authorization": f"Bearer {token}"})
    try:
        thread = await client.threads.create()
        await client.runs.create(thread["thread_id"], "held", input={"release": str(release)})
        user.threads.append(thread["thread_id"])
    finally:
        await client.aclose()
    until(Path(f"{release}.started").exists, 30, "the held run to start")


def until(check: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out after {timeout}s waiting for {what}"
        time.sleep(0.1)


def one(url: str, sql: str, *params: Any) -> Any:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(sql, params[0] if params and isinstance(params[0], dict) else params).fetchone()
    return None if row is None else (row[0] if len(row) == 1 else tuple(row))


def money(topology: Topology, account: str) -> tuple[int, int, int, int]:
    """(ledger sum, ledger rows, receipts, balance)."""
    return one(
        topology.app_db,
        "SELECT (SELECT coalesce(sum(amount), 0) FROM credit_ledger WHERE billing_account_id = %(a)s)::bigint,"
        " (SELECT count(*) FROM credit_ledger WHERE billing_account_id = %(a)s),"
        " (SELECT count(*) FROM charge_receipts WHERE billing_account_id = %(a)s),"
        " (SELECT balance_credits FROM billing_accounts WHERE id = %(a)s)",
        {"a": account},
    )


def server_rows(topology: Topology, user: User) -> dict[str, int]:
    counts = {}
    for table in ("threads", "runs", "crons"):
        counts[table] = one(topology.server_db, f"SELECT count(*) FROM {table} WHERE owner = %s", user.account_id)
    counts["checkpoints"] = one(
        topology.server_db, "SELECT count(*) FROM checkpoints WHERE thread_id = ANY(%s)", user.threads
    )
    return counts


async def test_two_apps_asked_at_once_run_the_deletion_once(topology: Topology, tmp_path: Path) -> None:
    alice, bob = new_user(topology, f"alice-{uuid.uuid4().hex[:6]}"), new_user(topology, f"bob-{uuid.uuid4().hex[:6]}")
    for user in (alice, bob):
        bill(topology, user, calls=2)
        await converse(topology, user)
    release = tmp_path / "release"
    try:
        await asyncio.to_thread(lambda: asyncio.run(hold_a_run(topology, alice, release)))
        await _ask_twice_and_check(topology, alice, bob, release)
    finally:
        await asyncio.to_thread(release.touch)  # the held run ends (when a check failed on the way too)


async def _ask_twice_and_check(topology: Topology, alice: User, bob: User, release: Path) -> None:
    alice_money, bob_money = money(topology, alice.account_id), money(topology, bob.account_id)
    assert alice_money[2] == 2 and alice_money[0] == alice_money[3] < 10_000_000
    bob_server = server_rows(topology, bob)
    assert server_rows(topology, alice)["threads"] == 2

    # the user asks both apps at the same moment
    async def ask(app: int) -> httpx.Response:
        base = topology.apps[app].base_url
        async with httpx.AsyncClient(base_url=base, timeout=60) as http:
            return await http.delete("/v1/account/data", headers={"Authorization": f"Bearer {alice.api_key}"})

    answers = await asyncio.gather(ask(0), ask(1))
    try:
        codes = sorted(a.status_code for a in answers)
        # the second request either joins the job (202, no new token) or comes after the keys were revoked
        assert codes in ([202, 202], [202, 401]), [a.text for a in answers]
        tokens = [a.json()["statusToken"] for a in answers if a.status_code == 202 and "statusToken" in a.json()]
        assert len(tokens) == 1, f"one job, one status token: {[a.text for a in answers]}"
        token = tokens[0]
        auth = {"Authorization": f"Bearer {token}"}
        # both apps read the job, and so both have a runner for it; the server's purge waits for the held run
        for app in topology.apps:
            status = app.get("/v1/account/data/deletion", headers=auth)
            assert status.status_code == 200 and status.json()["status"] == "in_progress", status.text
        until(
            lambda: (
                one(topology.server_db, "SELECT status FROM tenant_purges WHERE tenant = %s", alice.account_id)
                == "in_progress"
            ),
            30,
            "the server's purge to start",
        )
        await asyncio.sleep(1.0)  # both apps' runners go for the job meanwhile (retry every 0.2 s)
        reads = [app.get("/v1/account/data/deletion", headers=auth).json() for app in topology.apps]
        assert reads[0] == reads[1] and reads[0]["steps"]["server"]["status"] == "pending"
    finally:
        await asyncio.to_thread(release.touch)

    def done(app: httpx.Client) -> dict[str, Any] | None:
        body = app.get("/v1/account/data/deletion", headers=auth).json()
        return body if body["status"] == "done" else None

    record = until(lambda: done(topology.apps[1]), 60, "the deletion to finish")
    assert done(topology.apps[0]) == record  # the same record from both apps
    assert topology.admin("GET", f"/v1/admin/accounts/{alice.account_id}/data/deletion", app=1).json() == record
    assert record["passes"] == 1, f"the job took more than one pass: {record}"
    assert {s: v["status"] for s, v in record["steps"].items()} == {
        "server": "done",
        "app": "done",
        "spend_log": "done",
    }

    # done once: one purge request to the server, in one app; it took one pass; its counts are the user's rows
    purge_calls = [app.output().count(f"/admin/tenants/{alice.account_id}/purge") for app in topology.app_processes]
    assert sorted(purge_calls) == [0, 1], f"purge requests sent by each app: {purge_calls}"
    purge = one(topology.server_db, "SELECT passes, counts FROM tenant_purges WHERE tenant = %s", alice.account_id)
    assert purge[0] == 1, f"the server purged {purge[0]} times"
    server_counts = record["steps"]["server"]["counts"]
    assert {t: n for t, n in server_counts.items() if n} == {t: n for t, n in purge[1].items() if n}
    assert server_counts["threads"] == 2 and server_counts["runs"] == 2 and server_counts["crons"] == 1
    assert server_counts["store"] == 1 and server_counts["checkpoints"] >= 1
    app_counts = record["steps"]["app"]["counts"]
    assert app_counts["api_keys"] == 1 and app_counts["virtual_keys"] == 1 and app_counts["billing_accounts"] == 1
    assert record["steps"]["spend_log"]["counts"] == {"litellm_spend_logs": 2}
    assert (
        one(topology.app_db, "SELECT count(*) FROM account_deletions WHERE billing_account_id = %s", alice.account_id)
        == 1
    )

    # nothing of alice's left on the server; her money stays and a reconcile bills nothing twice
    assert server_rows(topology, alice) == {"threads": 0, "runs": 0, "crons": 0, "checkpoints": 0}
    assert money(topology, alice.account_id) == alice_money
    # bob keeps everything
    assert server_rows(topology, bob) == bob_server
    assert money(topology, bob.account_id) == bob_money
    for app in topology.apps:
        assert app.get("/v1/activity", headers={"Authorization": f"Bearer {bob.api_key}"}).status_code == 200
