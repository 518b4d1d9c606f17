"""Issue 12, billing lag after an app restart. Runs the app had in flight when it was killed keep running on
the Agent Server; nobody follows their streams any more, so their calls (ending while the app was down or
just after it came back) can only be billed from the spend log. The app sweeps it at start and then every
`COGNI_RECONCILE_CATCHUP_INTERVAL_SECONDS` for `COGNI_RECONCILE_CATCHUP_SECONDS`, so those calls are billed
within seconds, not at the next periodic sweep (300 s by default), and exactly once, also with two apps
side by side on one database.

Real `cogni-app serve` processes (killed with SIGKILL), real calls through the LiteLLM proxy with the
spend-log sink (the orphaned runs' calls), real Postgres.
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
import pytest

from testsupport import ManagedProcess, free_port, fresh_database
from testsupport.llm_stack import LlmStack, running_llm_stack

from . import proxy_calls

pytestmark = [pytest.mark.integration, pytest.mark.proxy]
ADMIN = "op-" + "r" * 40
MARKUP = Decimal("2.0")
PERIODIC_SWEEP_SECONDS = 300  # the default: without the catch-up, a call missed at restart waits this long
PROMPTLY_SECONDS = 30.0  # far less than the periodic sweep, generous for a loaded machine


@pytest.fixture(scope="module")
def stack() -> Iterator[LlmStack]:
    with running_llm_stack() as stack:
        yield stack


class App:
    """One `cogni-app serve` process on `database_url`."""

    def __init__(self, stack: LlmStack, database_url: str) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        env = {
            **stack.env(),
            "DATABASE_URL": database_url,
            "COGNI_EXECUTOR": "inproc",
            "COGNI_ADMIN_TOKEN": ADMIN,
            "USER_PRICE_MARKUP_FACTOR": str(MARKUP),
            "COGNI_RECONCILE_INTERVAL_SECONDS": str(PERIODIC_SWEEP_SECONDS),
        }
        self.proc = ManagedProcess(
            [sys.executable, "-m", "cogni_app", "serve", "--port", str(self.port)], env=env, name="cogni-app"
        )

    def wait_ready(self) -> App:
        self.proc.wait_http(f"{self.base}/healthz", timeout=90)
        return self

    def admin(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        with httpx.Client(base_url=self.base, timeout=30.0) as http:
            return http.request(method, path, headers={"Authorization": f"Bearer {ADMIN}"}, **kwargs)

    def receipts(self, run_id: str) -> list[dict[str, Any]]:
        response = self.admin("GET", f"/v1/admin/runs/{run_id}/receipts")
        assert response.status_code == 200, response.text
        receipts: list[dict[str, Any]] = response.json()["receipts"]
        return receipts

    def balance(self, account: str) -> int:
        return int(self.admin("GET", f"/v1/admin/accounts/{account}/balance").json()["balanceCredits"])


def llm_call(stack: LlmStack, account: str, run_id: str) -> tuple[str, int]:
    return proxy_calls.llm_call(stack, account, run_id, markup=MARKUP)


def wait_for_receipts(app: App, run_id: str, count: int) -> list[dict[str, Any]]:
    deadline = time.monotonic() + PROMPTLY_SECONDS
    while True:
        receipts = app.receipts(run_id)
        if len(receipts) >= count or time.monotonic() > deadline:
            return receipts
        time.sleep(0.2)


def new_account(app: App, credits: int = 10_000_000) -> str:
    response = app.admin("POST", "/v1/admin/accounts", json={"name": "restart", "initialCredits": credits})
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def assert_billed_exactly_once(receipts: list[dict[str, Any]], calls: dict[str, int]) -> None:
    billed = sorted(r["litellmCallId"] for r in receipts)
    assert billed == sorted(calls), f"receipts {billed} for calls {sorted(calls)}"
    assert {r["litellmCallId"]: int(r["chargedCredits"]) for r in receipts} == calls


def test_calls_of_a_killed_apps_runs_are_billed_promptly_after_restart_and_once(stack: LlmStack) -> None:
    with fresh_database("cogni_app_restart") as db:
        first = App(stack, db).wait_ready()
        try:
            account = new_account(first)
            run_id = str(uuid.uuid4())
            first.proc.kill()  # kill -9 with the run in flight: its relay (stream charge, post-run reconcile) dies
            calls = dict([llm_call(stack, account, run_id)])  # a call that ends while the app is down
        finally:
            first.proc.stop()
        app = App(stack, db).wait_ready()
        try:
            calls.update([llm_call(stack, account, run_id)])  # and one that ends after it is back
            receipts = wait_for_receipts(app, run_id, len(calls))
            assert_billed_exactly_once(receipts, calls)
            time.sleep(3)  # a few more catch-up sweeps: nothing is charged twice
            assert_billed_exactly_once(app.receipts(run_id), calls)
            assert app.balance(account) == 10_000_000 - sum(calls.values())
        finally:
            app.proc.stop()


def test_two_apps_side_by_side_after_a_restart_bill_each_call_once(stack: LlmStack) -> None:
    with fresh_database("cogni_app_restart_pair") as db:
        first = App(stack, db).wait_ready()
        try:
            account = new_account(first)
            run_id = str(uuid.uuid4())
            first.proc.kill()
            calls = dict([llm_call(stack, account, run_id)])
            pair = [App(stack, db), App(stack, db)]  # started together, both catching up on one database
            try:
                for app in pair:
                    app.wait_ready()
                with ThreadPoolExecutor(4) as pool:  # four calls of the orphaned run, ending together
                    calls.update(pool.map(lambda _: llm_call(stack, account, run_id), range(4)))
                receipts = wait_for_receipts(pair[0], run_id, len(calls))
                assert_billed_exactly_once(receipts, calls)
                time.sleep(3)
                for app in pair:
                    assert_billed_exactly_once(app.receipts(run_id), calls)
                assert pair[1].balance(account) == 10_000_000 - sum(calls.values())
            finally:
                for app in pair:
                    app.proc.stop()
        finally:
            first.proc.stop()
