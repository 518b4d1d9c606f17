"""The operator console in a real browser (Debian's Chromium via Playwright) against the whole stack.

What an operator would notice: a wrong token is refused; the overview counts today's charges and the
server's runs; an account shows the balance left after a chat and its receipts (stream, later
reconcile); a tenant's threads are listed and filtered; a running run streams live on its page; an
interrupted run is answered from the page and finishes; the reconcile button bills lost usage once;
crons are listed; a run's webhook outcome shows on its thread; a data deletion started from the page (once
the account id is typed again) completes and shows what each step deleted. Each page is screenshotted
(see docs/console.md).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from langgraph_sdk import get_sync_client
from playwright.sync_api import Browser, Page, expect
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from cogni_app.deletion.jobs import TRY_LOCK
from tests.console.conftest import ADMIN, ConsoleStack
from testsupport.asgi import serve_asgi

pytestmark = [pytest.mark.integration, pytest.mark.stack, pytest.mark.proxy]
CREDITS = 50_000_000


def chat(stack: ConsoleStack, key: str, message: str) -> str:
    """One chat through the app, read to the end; its run id."""
    with stack.http.stream(
        "POST", "/v1/chat", json={"message": message}, headers={"Authorization": f"Bearer {key}"}
    ) as response:
        assert response.status_code == 200, response.read().decode()
        events = [json.loads(line[5:]) for line in response.iter_lines() if line.startswith("data:")]
    assert events[-1]["type"] == "done", events[-3:]
    return response.headers["x-run-id"]


def wait_idle(stack: ConsoleStack, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while "cogni_app_relay_runs_in_flight 0.0" not in stack.http.get("/metrics").text:
        assert time.monotonic() < deadline, "the app still has runs in flight"
        time.sleep(0.1)


def server_client(stack: ConsoleStack, tenant: str) -> Any:
    """The Agent Server as the tenant, with the token the console's config route hands out."""
    access = stack.admin("GET", "/console/api/config", params={"tenant": tenant}).json()
    assert access["serverUrl"] == stack.server_url
    return get_sync_client(
        url=stack.server_url, api_key=None, headers={"Authorization": f"Bearer {access['serverToken']}"}
    )


@pytest.fixture(scope="module")
def data(console_stack: ConsoleStack) -> dict[str, Any]:
    """An account that chatted, an interrupted thread, a slow thread still running, a cron."""
    stack = console_stack
    account = stack.admin("POST", "/v1/admin/accounts", json={"name": "Acme Robotics", "initialCredits": CREDITS})
    account_id = account.json()["id"]
    key = stack.admin("POST", f"/v1/admin/accounts/{account_id}/api-keys", json={"label": "ci"}).json()["apiKey"]
    run_id = chat(stack, key, "hello console")
    wait_idle(stack)
    client = server_client(stack, account_id)
    approval = client.threads.create(metadata={"graph_id": "approval"})["thread_id"]
    client.runs.wait(approval, "approval", input={"request": "deploy"})
    cron = client.crons.create("slow", schedule="0 0 1 1 *", input={"steps": 1, "delay": 0})
    return {"account": account_id, "key": key, "run": run_id, "approval": approval,
            "cron": cron["cron_id"], "client": client}  # fmt: skip


@pytest.fixture
def page(browser: Browser, console_stack: ConsoleStack) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1360, "height": 900}, locale="en-US")
    p = context.new_page()
    p.set_default_timeout(15_000)
    requested: list[str] = []
    problems: list[str] = []
    p.on("request", lambda r: requested.append(r.url))
    p.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    # a refused request (the wrong-token test) logs "Failed to load resource"; anything else is a bug or a CSP refusal
    p.on("console", lambda m: problems.append(m.text) if m.type == "error" and "Failed to load" not in m.text else None)
    try:
        yield p
    finally:
        context.close()
    assert problems == []
    # nothing from the internet: every request went to the app or the Agent Server
    origins = (console_stack.app_url + "/", console_stack.server_url + "/")
    assert requested and all(url.startswith(origins) for url in requested), requested


def login(page: Page, stack: ConsoleStack, token: str = ADMIN, hash_: str = "") -> None:
    page.goto(f"{stack.app_url}/console/{hash_}")
    page.fill("#token", token)
    page.click("#login-form button")


def credits(n: int) -> str:
    return f"{n:,}"


def test_wrong_token_is_refused_and_data_routes_need_the_operator(page: Page, console_stack: ConsoleStack) -> None:
    login(page, console_stack, token="not-the-operator-token")
    expect(page.locator("#login-error")).to_have_text("Refused: wrong operator token.")
    expect(page.locator("#nav")).to_be_hidden()
    assert page.evaluate("sessionStorage.getItem('cogni.console.operatorToken')") is None
    assert console_stack.http.get("/console/api/accounts").status_code == 401
    wrong = {"Authorization": "Bearer " + "x" * 40}
    assert console_stack.http.get("/console/api/config", headers=wrong).status_code == 403


def test_overview_counts_todays_charges_and_the_servers_runs(
    page: Page, console_stack: ConsoleStack, data: dict[str, Any], shots: Path
) -> None:
    login(page, console_stack)
    expect(page.get_by_test_id("stat-charged")).to_be_visible()
    charged = int(page.get_by_test_id("stat-charged").locator(".value").inner_text().replace(",", ""))
    assert charged > 0
    expect(page.get_by_test_id("stat-charged")).to_contain_text("stream")
    expect(page.get_by_test_id("stat-issued")).to_contain_text(credits(CREDITS))
    hint = page.get_by_test_id("stat-runs-per-minute").locator(".hint").inner_text()
    assert int(hint.split()[0].replace(",", "")) >= 2  # the chat's run and the approval run
    expect(page.get_by_test_id("stat-queue-depth").locator(".value")).to_have_text("0")
    expect(page.locator("svg[aria-label='runs per minute'] polyline")).to_have_count(1)  # a second scrape came
    expect(page.locator("svg[aria-label='credits charged per hour'] rect")).not_to_have_count(0)
    page.screenshot(path=str(shots / "overview.png"), full_page=True)


def test_account_shows_balance_after_the_chat_and_its_stream_receipts(
    page: Page, console_stack: ConsoleStack, data: dict[str, Any], shots: Path
) -> None:
    login(page, console_stack, hash_="#/accounts")
    page.get_by_test_id("accounts-filter").locator("input[name=q]").fill("acme")
    page.get_by_test_id("accounts-filter").locator("button").click()
    page.get_by_test_id("accounts-table").get_by_role("link", name="Acme Robotics").first.click()
    balance = console_stack.admin("GET", f"/v1/admin/accounts/{data['account']}/balance").json()["balanceCredits"]
    assert balance < CREDITS
    expect(page.get_by_test_id("account-balance")).to_contain_text(f"{credits(balance)} credits")
    receipts = page.get_by_test_id("account-receipts")
    expect(receipts.locator("tbody tr").first).to_contain_text(data["run"])
    expect(receipts.locator("tbody")).to_contain_text("stream")
    expect(page.get_by_test_id("account-api-keys")).to_contain_text("cogni_")
    assert data["key"] not in page.content()  # never the secret
    expect(page.get_by_test_id("account-ledger")).to_contain_text("grant")
    page.screenshot(path=str(shots / "account.png"), full_page=True)


def test_threads_are_listed_and_filtered_and_a_running_run_streams_live(
    page: Page, console_stack: ConsoleStack, data: dict[str, Any], shots: Path
) -> None:
    client = data["client"]
    slow = client.threads.create(metadata={"graph_id": "slow"})["thread_id"]
    run = client.runs.create(slow, "slow", input={"steps": 40, "delay": 0.25}, stream_mode=["values", "updates"])
    login(page, console_stack, hash_=f"#/runs?tenant={data['account']}")
    table = page.get_by_test_id("threads-table")
    expect(table).to_contain_text(data["approval"])
    expect(table).to_contain_text(slow)
    expect(table).to_contain_text("interrupted")
    page.screenshot(path=str(shots / "threads.png"), full_page=True)
    form = page.get_by_test_id("threads-filter")
    form.locator("select[name=status]").select_option("interrupted")
    form.locator("button").click()
    expect(table.locator("tbody tr")).to_have_count(1)
    expect(table).to_contain_text(data["approval"])

    form.locator("select[name=status]").select_option("")
    form.locator("input[name=graph]").fill("chat")  # the app's chat ran on the server's `chat` graph
    form.locator("button").click()
    expect(table.locator("tbody tr")).to_have_count(1)
    table.locator("tbody a").click()
    expect(page.get_by_test_id("thread-messages")).to_contain_text("hello console")
    expect(page.get_by_test_id("thread-messages").locator(".msg.ai")).to_have_count(1)
    page.screenshot(path=str(shots / "thread-chat.png"), full_page=True)

    page.goto(f"{console_stack.app_url}/console/#/threads/{data['account']}/{slow}")
    expect(page.get_by_test_id("stream-state")).to_have_text("live")
    log = page.get_by_test_id("stream-log")
    expect(log).to_contain_text('"done"')
    first = log.inner_text().count("\n")
    page.wait_for_timeout(1200)
    assert log.inner_text().count("\n") > first  # more events arrived while we watched
    page.screenshot(path=str(shots / "run-live.png"), full_page=True)
    client.runs.cancel(slow, run["run_id"])


def test_an_interrupted_run_is_answered_from_the_page(
    page: Page, console_stack: ConsoleStack, data: dict[str, Any], shots: Path
) -> None:
    tid = data["approval"]
    login(page, console_stack, hash_=f"#/threads/{data['account']}/{tid}")
    form = page.get_by_test_id("resume-form")
    expect(form).to_contain_text("approve deploy?")
    expect(page.get_by_test_id("thread-history")).to_contain_text("ask")
    page.screenshot(path=str(shots / "thread-interrupted.png"), full_page=True)
    form.locator("textarea").fill('"yes"')
    form.locator("button").click()
    expect(page.locator("h1 .badge")).to_have_text("idle")
    expect(page.get_by_test_id("thread-state")).to_contain_text("finished:yes")
    expect(page.get_by_test_id("stream-log")).to_contain_text("finished:yes")  # the resumed run's events
    thread = data["client"].threads.get(tid)
    assert thread["status"] == "idle" and thread["values"]["decision"] == "yes"
    page.screenshot(path=str(shots / "thread.png"), full_page=True)


def test_reconcile_button_bills_lost_usage_once(
    page: Page, console_stack: ConsoleStack, data: dict[str, Any], shots: Path
) -> None:
    run_id = data["run"]
    with psycopg.connect(console_stack.app_db) as conn:  # usage lost on the way: the run's receipts vanish
        ids = [r[0] for r in conn.execute("SELECT id FROM charge_receipts WHERE run_id = %s", (run_id,))]
        assert ids
        conn.execute("DELETE FROM credit_ledger WHERE reason = 'charge_receipt' AND reference = ANY(%s)", (ids,))
        conn.execute("DELETE FROM charge_receipts WHERE run_id = %s", (run_id,))
    login(page, console_stack, hash_="#/reconcile")
    page.get_by_test_id("reconcile-run").click()
    expect(page.get_by_test_id("reconcile-note")).to_have_text(f"sweep done: {len(ids)} receipt(s) created")
    expect(page.get_by_test_id("reconcile-table")).to_contain_text(run_id)
    expect(page.get_by_test_id("reconcile-differences").locator(".value")).to_have_text(str(len(ids)))
    page.screenshot(path=str(shots / "reconcile.png"), full_page=True)
    page.get_by_test_id("reconcile-run").click()
    expect(page.get_by_test_id("reconcile-note")).to_have_text("sweep done: 0 receipt(s) created")

    page.goto(f"{console_stack.app_url}/console/#/accounts/{data['account']}")
    receipts = page.get_by_test_id("account-receipts")
    receipts.locator("select[name=provenance]").select_option("reconcile")
    receipts.get_by_role("button", name="Apply").click()
    expect(receipts.locator("tbody tr")).to_have_count(len(ids))
    expect(receipts.locator("tbody")).to_contain_text(run_id)


def test_crons_are_listed(page: Page, console_stack: ConsoleStack, data: dict[str, Any], shots: Path) -> None:
    login(page, console_stack, hash_=f"#/crons?tenant={data['account']}")
    expect(page.get_by_test_id("crons-table")).to_contain_text(data["cron"])
    expect(page.get_by_test_id("crons-table")).to_contain_text("0 0 1 1 *")
    page.screenshot(path=str(shots / "crons.png"), full_page=True)


def test_a_deletion_started_from_the_page_completes_and_shows_its_counts(
    page: Page, console_stack: ConsoleStack, shots: Path
) -> None:
    stack = console_stack
    created = stack.admin("POST", "/v1/admin/accounts", json={"name": "Leaving Ltd", "initialCredits": 1_000})
    account = created.json()["id"]
    stack.admin("POST", f"/v1/admin/accounts/{account}/api-keys", json={"label": "last"})
    client = server_client(stack, account)

    async def gone(_: Request) -> JSONResponse:  # the customer's endpoint is gone: fails at once, no retry
        return JSONResponse({"detail": "gone"}, status_code=410)

    with serve_asgi(Starlette(routes=[Route("/hook", gone, methods=["POST"])]), lifespan="off") as hook:
        thread = client.threads.create(metadata={"graph_id": "slow"})["thread_id"]
        run = client.runs.create(thread, "slow", input={"steps": 1, "delay": 0}, webhook=f"{hook}/hook")
        client.runs.join(thread, run["run_id"])
        deadline = time.monotonic() + 20
        while "webhook_delivery" not in client.runs.get(thread, run["run_id"])["metadata"]:
            assert time.monotonic() < deadline, "the server recorded no webhook outcome on the run"
            time.sleep(0.1)
    login(page, stack, hash_=f"#/threads/{account}/{thread}")
    webhook = page.get_by_test_id("run-webhook")
    expect(webhook).to_contain_text("failed")
    expect(webhook).to_contain_text("1 attempt")
    expect(webhook.locator(".error")).to_have_text("last error: HTTP 410")
    page.screenshot(path=str(shots / "run-webhook.png"), full_page=True)

    page.goto(f"{stack.app_url}/console/#/accounts/{account}")
    page.get_by_test_id("account-delete").click()
    form = page.get_by_test_id("deletion-start")
    expect(form.locator("input[name=accountId]")).to_have_value(account)
    button = form.get_by_role("button", name="Delete this account's data")
    form.locator("input[name=confirm]").fill(account[:-1])
    expect(button).to_be_disabled()
    assert stack.admin("GET", f"/v1/admin/accounts/{account}/data/deletion").status_code == 404
    form.locator("input[name=confirm]").fill(account)
    with psycopg.connect(console_stack.app_db, autocommit=True) as worker:  # holds the job: it stays in progress
        assert worker.execute(TRY_LOCK, (account,)).fetchone() == (True,)
        button.click()
        expect(page.get_by_test_id("deletion-note")).to_contain_text(f"deletion of {account} started")
        row = page.get_by_test_id("deletions-table").locator("tbody tr", has_text=account)
        expect(row.locator(".badge").first).to_have_text("in_progress")
        expect(page.get_by_test_id("deletions-refresh")).to_contain_text("refreshing")
    expect(row.locator(".badge").first).to_have_text("done")  # the list refreshed itself until the job ended
    expect(page.get_by_test_id("deletions-refresh")).not_to_contain_text("refreshing")
    expect(row).to_contain_text("3 / 3")
    expect(row).to_contain_text("threads 1")  # the Agent Server's purge
    expect(row).to_contain_text("runs 1")
    expect(row).to_contain_text("api_keys 1")  # the app's own rows
    expect(row).to_contain_text("operator")
    job = stack.admin("GET", f"/v1/admin/accounts/{account}/data/deletion").json()
    assert job["status"] == "done" and job["steps"]["server"]["counts"]["threads"] == 1
    page.get_by_test_id("deletions-filter").locator("select[name=status]").select_option("in_progress")
    page.get_by_test_id("deletions-filter").locator("button").click()
    expect(page.get_by_test_id("deletions-table")).not_to_contain_text(account)
    page.get_by_test_id("deletions-filter").locator("select[name=status]").select_option("done")
    page.get_by_test_id("deletions-filter").locator("button").click()
    expect(page.get_by_test_id("deletions-table")).to_contain_text(account)
    page.screenshot(path=str(shots / "deletions.png"), full_page=True)
