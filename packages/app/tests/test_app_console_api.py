"""The operator console's JSON routes (/console/api) on `cogni-app serve` as a process: paging and filters,
clear 4xx, the tenant token the browser uses on the Agent Server, and a sweep on demand that finds and bills
a spend-log call without a receipt exactly once. The browser side is tests/console."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import jwt
import psycopg
import pytest
from psycopg.types.json import Jsonb

from cogni_litellm_sink.schema import DDL, UPSERT

from .app_process import app_process

pytestmark = pytest.mark.integration
ADMIN = "console-api-admin-" + "a" * 32
SECRET = "console-api-jwt-" + "s" * 40
PUBLIC_SERVER = "http://agent-server.example.test:8123"


@dataclass
class App:
    http: httpx.Client
    db: str

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.http.get(path, headers={"Authorization": f"Bearer {ADMIN}"}, **kwargs)

    def post(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.http.post(path, headers={"Authorization": f"Bearer {ADMIN}"}, **kwargs)

    def account(self, name: str, credits: int = 1_000) -> str:
        return str(self.post("/v1/admin/accounts", json={"name": name, "initialCredits": credits}).json()["id"])


@pytest.fixture(scope="module")
def app() -> Iterator[App]:
    def sink_table(db: str) -> None:
        with psycopg.connect(db, autocommit=True) as conn:
            conn.execute(DDL.encode())  # the spend-log sink table lives in the app's database here

    env = {"LITELLM_API_KEY": "sk-console", "COGNI_ADMIN_TOKEN": ADMIN, "COGNI_JWT_SECRET": SECRET,
           "COGNI_SPEND_SINK_DATABASE_URL": "{database_url}", "COGNI_CONSOLE_SERVER_URL": PUBLIC_SERVER}  # fmt: skip
    with app_process("cogni_console_api", "cogni-app-console", env, prepare=sink_table) as (http, db, _):
        yield App(http=http, db=db)


def test_accounts_are_searched_and_paged_with_a_total(app: App) -> None:
    tag = f"paging-{uuid.uuid4().hex[:8]}"
    ids = [app.account(f"{tag} {i}") for i in range(3)]
    first = app.get("/console/api/accounts", params={"q": tag.upper(), "limit": 2}).json()
    assert (first["total"], first["limit"], first["offset"]) == (3, 2, 0)
    assert [a["id"] for a in first["items"]] == ids[::-1][:2]  # newest first
    rest = app.get("/console/api/accounts", params={"q": tag, "limit": 2, "offset": 2}).json()
    assert [a["id"] for a in rest["items"]] == [ids[0]] and rest["total"] == 3
    past = app.get("/console/api/accounts", params={"q": tag, "offset": 50}).json()
    assert past["items"] == [] and past["total"] == 3
    app.post(f"/v1/admin/accounts/{ids[2]}/credits", json={"amount": -1_500, "reason": "chargeback"})
    in_debt = app.get("/console/api/accounts", params={"q": tag, "balance": "negative"}).json()
    assert [(a["id"], a["balanceCredits"]) for a in in_debt["items"]] == [(ids[2], -500)] and in_debt["total"] == 1
    assert app.get("/console/api/accounts", params={"q": tag, "balance": "positive"}).json()["total"] == 2
    by_id = app.get("/console/api/accounts", params={"q": ids[1]}).json()
    assert [a["id"] for a in by_id["items"]] == [ids[1]] and by_id["items"][0]["balanceCredits"] == 1_000


def test_an_account_shows_its_keys_without_secrets(app: App) -> None:
    account = app.account("keys")
    issued = app.post(f"/v1/admin/accounts/{account}/api-keys", json={"label": "ops"}).json()
    body = app.get(f"/console/api/accounts/{account}").json()
    [key] = body["apiKeys"]
    assert key["label"] == "ops" and issued["apiKey"].startswith(key["keyPrefix"]) and key["revokedAt"] is None
    assert issued["apiKey"] not in str(body) and "keyHash" not in key
    assert body["balanceCredits"] == 1_000 and len(body["creditsPerDay"]) == 14
    assert body["creditsPerDay"][-1]["issued"] == "1000"


@pytest.mark.parametrize(
    ("path", "params", "status", "needle"),
    [
        ("/console/api/accounts", {"limit": 0}, 400, "limit"),
        ("/console/api/accounts", {"limit": 201}, 400, "limit"),
        ("/console/api/accounts", {"offset": -1}, 400, "offset"),
        ("/console/api/accounts", {"balance": "rich"}, 400, "balance"),
        ("/console/api/accounts/no-such-account", {}, 404, "no-such-account"),
        ("/console/api/accounts/no-such-account/receipts", {}, 404, "no-such-account"),
        ("/console/api/config", {"tenant": "no-such-account"}, 404, "no-such-account"),
        ("/console/api/deletions", {"status": "gone"}, 400, "status"),
        ("/console/api/deletions", {"limit": 201}, 400, "limit"),
    ],
)
def test_bad_requests_are_clear(app: App, path: str, params: dict[str, Any], status: int, needle: str) -> None:
    response = app.get(path, params=params)
    assert response.status_code == status, response.text
    assert needle in response.text


def test_bad_provenance_filter_is_400(app: App) -> None:
    account = app.account("provenance")
    response = app.get(f"/console/api/accounts/{account}/receipts", params={"provenance": "psychic"})
    assert response.status_code == 400 and "provenance" in response.text


def test_only_the_operator_gets_data(app: App) -> None:
    assert app.http.get("/console/api/overview").status_code == 401
    wrong = {"Authorization": "Bearer " + "w" * 40}
    assert app.http.get("/console/api/accounts", headers=wrong).status_code == 403
    assert app.http.post("/console/api/reconcile/run", headers=wrong).status_code == 403
    assert app.http.get("/console/api/deletions").status_code == 401
    account = app.account("not-deleted")
    ask = {"accountId": account, "confirm": account}
    assert app.http.post("/console/api/deletions", json=ask).status_code == 401
    assert app.http.post("/console/api/deletions", json=ask, headers=wrong).status_code == 403
    assert app.get(f"/v1/admin/accounts/{account}/data/deletion").status_code == 404  # nothing started
    page = app.http.get("/console/")  # the page itself holds no data
    assert page.status_code == 200 and "/console/static/js/main.js" in page.text
    csp = page.headers["content-security-policy"]  # the page may reach the app and the Agent Server only
    assert f"connect-src 'self' {PUBLIC_SERVER};" in csp and "script-src 'self';" in csp
    assert app.http.get("/console/static/js/api.js").status_code == 200


def test_config_hands_out_the_public_server_url_and_a_tenant_token(app: App) -> None:
    account = app.account("tenant")
    bare = app.get("/console/api/config").json()
    assert bare == {"serverUrl": PUBLIC_SERVER, "tenant": None, "serverToken": None, "expiresAt": None}
    access = app.get("/console/api/config", params={"tenant": account}).json()
    claims = jwt.decode(access["serverToken"], SECRET, algorithms=["HS256"], audience="cogni-agent-server")
    assert claims["sub"] == account and claims["exp"] == access["expiresAt"]


def test_run_now_bills_a_spend_log_call_without_receipt_once(app: App) -> None:
    account = app.account("reconcile", credits=1_000_000)
    run_id, call_id, now = str(uuid.uuid4()), f"call-{uuid.uuid4()}", datetime.now(UTC)
    row = (call_id, None, account, "0.002", 10, 5, 15, "openai/gpt-4o-mini", "gpt-4o-mini", "success", None,
           Jsonb({"run_id": run_id, "graph_id": "langgraph:chat"}), Jsonb([]), now, now, None, None, None)  # fmt: skip
    with psycopg.connect(app.db, autocommit=True) as conn:
        conn.execute(UPSERT.encode(), row)
        conn.execute(
            "UPDATE litellm_spend_logs SET start_time = now(), end_time = now() WHERE call_id = %s", (call_id,)
        )

    status = app.post("/console/api/reconcile/run").json()
    sweep = status["lastSweep"]
    assert sweep["trigger"] == "operator" and sweep["error"] is None and sweep["finishedAt"]
    assert sweep["created"] >= 1 and sweep["examined"] >= 1 and status["intervalSeconds"] == 0
    [diff] = [d for d in sweep["differences"] if d["callId"] == call_id]
    assert (diff["billingAccountId"], diff["runId"], diff["costUsd"]) == (account, run_id, "0.002")

    receipts = app.get(f"/console/api/accounts/{account}/receipts", params={"provenance": "reconcile"}).json()
    [receipt] = receipts["items"]
    assert receipt["runId"] == run_id and receipt["litellmCallId"] == call_id and receipt["chargedCredits"] > 0
    assert app.get(f"/console/api/accounts/{account}/receipts", params={"provenance": "stream"}).json()["total"] == 0
    ledger = app.get(f"/console/api/accounts/{account}/ledger", params={"reason": "charge_receipt"}).json()
    [entry] = ledger["items"]
    assert entry["amount"] == -receipt["chargedCredits"] and entry["metadata"]["provenance"] == "reconcile"
    assert app.get(f"/console/api/accounts/{account}").json()["creditsPerDay"][-1]["charged"] == str(
        receipt["chargedCredits"]
    )
    overview = app.get("/console/api/overview").json()
    assert int(overview["today"]["charged"]) >= receipt["chargedCredits"]
    assert overview["today"]["receiptsByProvenance"]["reconcile"] >= 1
    assert len(overview["chargedPerHour"]) == 24 and overview["reconcile"]["lastSweep"]["trigger"] == "operator"

    again = app.post("/console/api/reconcile/run").json()["lastSweep"]
    assert call_id not in [d["callId"] for d in again["differences"]]
    assert app.get(f"/console/api/accounts/{account}/receipts").json()["total"] == 1


def deletion_done(app: App, account: str, timeout: float = 30.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while (job := app.get(f"/v1/admin/accounts/{account}/data/deletion").json())["status"] != "done":
        assert time.monotonic() < deadline, job
        time.sleep(0.1)
    return job


def test_deletions_start_only_when_confirmed_and_are_listed_filtered_and_paged(app: App) -> None:
    before = app.get("/console/api/deletions").json()["total"]
    first, second, third = (app.account(f"deletion {i}") for i in range(3))
    key = app.post(f"/v1/admin/accounts/{first}/api-keys", json={"label": "gone"}).json()["apiKey"]

    mismatch = app.post("/console/api/deletions", json={"accountId": first, "confirm": second})
    assert mismatch.status_code == 400 and "confirm" in mismatch.json()["message"]
    assert app.get(f"/v1/admin/accounts/{first}/data/deletion").status_code == 404  # nothing started
    assert app.http.get("/v1/activity", headers={"Authorization": f"Bearer {key}"}).status_code == 200
    unknown = app.post("/console/api/deletions", json={"accountId": "no-such-account", "confirm": "no-such-account"})
    assert unknown.status_code == 404 and "no-such-account" in unknown.text

    for account in (first, second, third):
        started = app.post("/console/api/deletions", json={"accountId": account, "confirm": account})
        assert started.status_code == 202, started.text
        body = started.json()
        assert (body["billingAccountId"], body["requestedBy"]) == (account, "operator")
        assert body["statusToken"].startswith("cogni_del_")
        deletion_done(app, account)
    assert app.http.get("/v1/activity", headers={"Authorization": f"Bearer {key}"}).status_code == 401

    listed = app.get("/console/api/deletions", params={"limit": 2}).json()
    assert (listed["total"], listed["limit"], listed["offset"]) == (before + 3, 2, 0)
    assert [j["billingAccountId"] for j in listed["items"]] == [third, second]  # newest request first
    rest = app.get("/console/api/deletions", params={"limit": 2, "offset": 2}).json()
    [job] = [j for j in rest["items"] if j["billingAccountId"] == first]
    assert job["status"] == "done" and job["requestedBy"] == "operator" and job["completedAt"]
    assert job["passes"] == 1 and job["lastError"] is None and "statusToken" not in job
    assert job["steps"]["server"]["status"] == "skipped"  # graphs run in the app here
    assert job["steps"]["app"] == {"status": "done", "counts": {**job["steps"]["app"]["counts"], "api_keys": 1}}
    assert job["steps"]["app"]["counts"]["virtual_keys"] == 1 and job["steps"]["spend_log"]["status"] == "done"
    past = app.get("/console/api/deletions", params={"offset": before + 10}).json()
    assert past["items"] == [] and past["total"] == before + 3

    done = app.get("/console/api/deletions", params={"status": "done", "limit": 200}).json()
    assert {first, second, third} <= {j["billingAccountId"] for j in done["items"]}
    assert {j["status"] for j in done["items"]} == {"done"}
    running = app.get("/console/api/deletions", params={"status": "in_progress", "limit": 200}).json()
    assert all(j["status"] == "in_progress" for j in running["items"]) and running["total"] == len(running["items"])
    assert not {first, second, third} & {j["billingAccountId"] for j in running["items"]}
    assert done["total"] + running["total"] == before + 3
