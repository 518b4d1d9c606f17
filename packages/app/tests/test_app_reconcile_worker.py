"""Issue 12, billing lag under `app-kill`: billing must not depend on the chat-serving process being alive.

`cogni-app reconcile-worker` sweeps the spend log from the durable cursor every second in a process of its
own. With the app killed (SIGKILL) and not started again, a call that ends meanwhile is billed by the worker
within about two seconds (settle 1 s + interval 1 s), once; two workers side by side bill each call once.
Without the worker the same call waits for an app to start again (4 to 8 s in the chaos campaign).

Real processes (`cogni-app serve` with the in-process executor, `cogni-app reconcile-worker`), real calls
through the LiteLLM proxy with the spend-log sink, real Postgres.
"""

from __future__ import annotations

import sys
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import Any

import httpx
import psycopg
import pytest
from psycopg.rows import dict_row

from testsupport import ManagedProcess, free_port, fresh_database
from testsupport.llm_stack import LlmStack, running_llm_stack

from . import proxy_calls

pytestmark = [pytest.mark.integration, pytest.mark.proxy]
ADMIN = "op-" + "w" * 40
MARKUP = Decimal("2.0")
CREDITS = 10_000_000
PROMPTLY_SECONDS = 3.5  # settle 1 s + interval 1 s, with room for a loaded machine
RECEIPTS = "SELECT litellm_call_id, charged_credits, provenance FROM charge_receipts WHERE run_id = %s"


@pytest.fixture(scope="module")
def stack() -> Iterator[LlmStack]:
    with running_llm_stack() as stack:
        yield stack


def start_app(stack: LlmStack, database_url: str) -> tuple[ManagedProcess, str]:
    """`cogni-app serve` (migrates the database; its own sweep is 300 s away, its catch-up off)."""
    port = free_port()
    env = {**stack.env(), "DATABASE_URL": database_url, "COGNI_EXECUTOR": "inproc", "COGNI_ADMIN_TOKEN": ADMIN,
           "USER_PRICE_MARKUP_FACTOR": str(MARKUP), "COGNI_RECONCILE_CATCHUP_SECONDS": "0"}  # fmt: skip
    proc = ManagedProcess([sys.executable, "-m", "cogni_app", "serve", "--port", str(port)], env=env, name="cogni-app")
    proc.wait_http(f"http://127.0.0.1:{port}/healthz", timeout=90)
    return proc, f"http://127.0.0.1:{port}"


def start_worker(stack: LlmStack, database_url: str) -> ManagedProcess:
    port = free_port()
    env = {**stack.env(), "DATABASE_URL": database_url, "USER_PRICE_MARKUP_FACTOR": str(MARKUP)}
    args = [sys.executable, "-m", "cogni_app", "reconcile-worker", "--metrics-port", str(port)]
    proc = ManagedProcess(args, env=env, name="cogni-reconcile-worker")
    proc.wait_http(f"http://127.0.0.1:{port}/metrics", timeout=90)
    return proc


def new_account(app_url: str) -> str:
    response = httpx.post(
        f"{app_url}/v1/admin/accounts",
        headers={"Authorization": f"Bearer {ADMIN}"},
        json={"name": "worker", "initialCredits": CREDITS},
        timeout=30,
    )
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def llm_call(stack: LlmStack, account: str, run_id: str) -> tuple[str, int, float]:
    """One call of the run through the proxy: its id, price in credits and when (monotonic) its spend-log
    row was there."""
    call_id, credits = proxy_calls.llm_call(stack, account, run_id, markup=MARKUP)
    return call_id, credits, time.monotonic()


def receipts(database_url: str, run_id: str) -> list[dict[str, Any]]:
    with psycopg.connect(database_url, row_factory=dict_row) as conn:
        return [dict(r) for r in conn.execute(RECEIPTS, (run_id,))]


def balance(database_url: str, account: str) -> int:
    with psycopg.connect(database_url) as conn:
        row = conn.execute("SELECT balance_credits FROM billing_accounts WHERE id = %s", (account,)).fetchone()
    assert row is not None
    return int(row[0])


def wait_for_receipts(database_url: str, run_id: str, count: int, since: float) -> float:
    """Seconds from `since` until the run has `count` receipts (read straight from the database: no app)."""
    while len(receipts(database_url, run_id)) < count:
        assert time.monotonic() - since < 30, f"not billed: {receipts(database_url, run_id)}"
        time.sleep(0.1)
    return time.monotonic() - since


def assert_billed_once(database_url: str, run_id: str, calls: dict[str, int]) -> None:
    got = receipts(database_url, run_id)
    assert sorted(r["litellm_call_id"] for r in got) == sorted(calls), f"receipts {got} for calls {sorted(calls)}"
    assert {r["litellm_call_id"]: int(r["charged_credits"]) for r in got} == calls


def test_a_call_ending_while_the_app_is_dead_is_billed_by_the_worker_within_seconds_once(stack: LlmStack) -> None:
    with fresh_database("cogni_app_worker") as db:
        app, app_url = start_app(stack, db)
        worker: ManagedProcess | None = None
        try:
            account = new_account(app_url)
            worker = start_worker(stack, db)
            app.kill()  # kill -9 with a run in flight: its relay (stream charge, post-run reconcile) dies with it
            run_id = str(uuid.uuid4())
            call_id, credits, ended = llm_call(stack, account, run_id)  # ends while no app process is alive
            lag = wait_for_receipts(db, run_id, 1, ended)
            assert lag < PROMPTLY_SECONDS, f"billed {lag:.2f}s after its spend-log row; the worker sweeps every 1 s"
            assert app.proc.poll() is not None, "billed with the app still dead"
            time.sleep(2.5)  # more sweeps: nothing charged twice
            assert_billed_once(db, run_id, {call_id: credits})
            assert receipts(db, run_id)[0]["provenance"] == "reconcile"
            assert balance(db, account) == CREDITS - credits
            print(f"billed {lag:.2f}s after its spend-log row was written")
        finally:
            app.stop()
            if worker is not None:
                worker.stop()


def test_two_workers_side_by_side_bill_each_call_once(stack: LlmStack) -> None:
    with fresh_database("cogni_app_worker_pair") as db:
        app, app_url = start_app(stack, db)
        workers: list[ManagedProcess] = []
        try:
            account = new_account(app_url)
            app.kill()
            workers = [start_worker(stack, db), start_worker(stack, db)]  # sweeping the same cursor
            run_id = str(uuid.uuid4())
            with ThreadPoolExecutor(6) as pool:  # six calls ending together
                made = list(pool.map(lambda _: llm_call(stack, account, run_id), range(6)))
            calls = {call_id: credits for call_id, credits, _ in made}
            lag = wait_for_receipts(db, run_id, len(calls), max(ended for _, _, ended in made))
            time.sleep(2.5)
            assert_billed_once(db, run_id, calls)
            assert balance(db, account) == CREDITS - sum(calls.values())
            assert all(w.proc.poll() is None for w in workers)
            print(f"the last of 6 calls billed {lag:.2f}s after its spend-log row")
        finally:
            app.stop()
            for worker in workers:
                worker.stop()
