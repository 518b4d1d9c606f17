"""The chat API as a real `cogni-app serve` process (in-process executor) against a real LiteLLM stack."""

from __future__ import annotations

import json
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import Any

import httpx
import pytest

from cogni_app.billing import estimate_credits
from testsupport import ManagedProcess, free_port, fresh_database
from testsupport.llm_stack import LlmStack, running_llm_stack

pytestmark = [pytest.mark.integration, pytest.mark.proxy]
ADMIN = "op-" + "a" * 40


class App:
    def __init__(self, base: str, stack: LlmStack) -> None:
        self.base = base
        self.stack = stack
        self.http = httpx.Client(base_url=base, timeout=30.0)

    def admin(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return self.http.request(method, path, headers={"Authorization": f"Bearer {ADMIN}"}, **kwargs)

    def new_account(self, credits: int = 10_000_000) -> str:
        account = self.admin("POST", "/v1/admin/accounts", json={"name": "api-test", "initialCredits": credits})
        assert account.status_code == 201, account.text
        key = self.admin("POST", f"/v1/admin/accounts/{account.json()['id']}/api-keys", json={})
        assert key.status_code == 201, key.text
        return str(key.json()["apiKey"])

    def receipts(self, run_id: str, count: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while True:
            receipts: list[dict[str, Any]] = self.admin("GET", f"/v1/admin/runs/{run_id}/receipts").json()["receipts"]
            if len(receipts) >= count or time.monotonic() > deadline:
                return receipts
            time.sleep(0.1)


def sse_events(response: httpx.Response) -> list[tuple[str, dict[str, Any]]]:
    events, name, data = [], None, []
    for line in response.iter_lines():
        if line.startswith("event:"):
            name = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].strip())
        elif not line and name:
            events.append((name, json.loads("\n".join(data))))
            name, data = None, []
    return events


def chat(app: App, key: str, body: dict[str, Any]) -> tuple[httpx.Response, list[tuple[str, dict[str, Any]]]]:
    with app.http.stream("POST", "/v1/chat", json=body, headers={"Authorization": f"Bearer {key}"}) as response:
        if response.status_code != 200:
            response.read()
            return response, []
        return response, sse_events(response)


@pytest.fixture(scope="module")
def app() -> Iterator[App]:
    with running_llm_stack() as stack, fresh_database("cogni_app_api") as db:
        port = free_port()
        env = {
            **stack.env(),
            "DATABASE_URL": db,
            "COGNI_EXECUTOR": "inproc",
            "COGNI_ADMIN_TOKEN": ADMIN,
            "COGNI_RECONCILE_DELAY_SECONDS": "0.5",
            "LITELLM_TIMEOUT_SECONDS": "10",  # a hung upstream is a timeout (3 s failed real calls under load)
        }
        proc = ManagedProcess(
            [sys.executable, "-m", "cogni_app", "serve", "--port", str(port)], env=env, name="cogni-app"
        )
        try:
            proc.wait_http(f"http://127.0.0.1:{port}/healthz", timeout=60)
            yield App(f"http://127.0.0.1:{port}", stack)
        finally:
            proc.stop()


def test_chat_streams_ai_events_and_bills_each_llm_call(app: App) -> None:
    key = app.new_account()
    response, events = chat(app, key, {"message": "hello from the api"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    state_key, run_id = response.headers["x-state-key"], response.headers["x-run-id"]
    assert state_key and uuid.UUID(run_id)
    names = [name for name, _ in events]
    assert names[-2:] == ["assistant_final", "done"] and "usage_report" not in names
    assert all(name == data["type"] for name, data in events)
    assert "".join(d["delta"] for n, d in events if n == "text_delta") == events[-2][1]["content"]

    [receipt] = app.receipts(run_id, 1)
    assert receipt["provenance"] == "stream" and receipt["chargedCredits"] > 0
    assert receipt["ingressRequestId"] == response.headers["x-request-id"]
    activity = app.http.get("/v1/activity", headers={"Authorization": f"Bearer {key}"}).json()
    [run] = [r for r in activity["runs"] if r["runId"] == run_id]
    assert run["credits"] == receipt["chargedCredits"] and run["llmCalls"] == 1 and run["inputTokens"] > 0
    assert activity["balanceCredits"] == 10_000_000 - receipt["chargedCredits"]


def test_state_key_continues_the_conversation(app: App) -> None:
    key = app.new_account()
    first, _ = chat(app, key, {"message": "first turn", "stateKey": "conv.1"})
    second, _ = chat(app, key, {"message": "second turn", "stateKey": "conv.1"})
    assert first.headers["x-state-key"] == second.headers["x-state-key"] == "conv.1"
    [r1] = app.receipts(first.headers["x-run-id"], 1)
    [r2] = app.receipts(second.headers["x-run-id"], 1)
    # the second call's prompt carries the first exchange: the thread state was kept
    activity = app.http.get("/v1/activity", headers={"Authorization": f"Bearer {key}"}).json()["runs"]
    tokens = {r["runId"]: r["inputTokens"] for r in activity}
    assert tokens[second.headers["x-run-id"]] > tokens[first.headers["x-run-id"]]
    assert r1["runId"] != r2["runId"]


def test_models_lists_the_allowlist_with_its_default(app: App) -> None:
    key = app.new_account()
    body = app.http.get("/v1/models", headers={"Authorization": f"Bearer {key}"}).json()
    ids = {m["id"]: m for m in body["models"]}
    assert body["defaultModelId"] == "gpt-4o-mini"
    assert ids["free-chat"]["isFree"] is True and ids["gpt-4o-mini"]["isDefault"] is True


def test_agents_lists_the_catalog_graphs_run_in_process(app: App) -> None:
    key = app.new_account()
    body = app.http.get("/v1/agents", headers={"Authorization": f"Bearer {key}"}).json()
    assert [a["id"] for a in body["agents"]] == ["langgraph:chat", "langgraph:poet", "langgraph:research"]
    poet = body["agents"][1]
    assert poet["displayName"] == "Poet" and poet["description"] and poet["tools"] == ["core__get_current_time"]
    assert body["defaultAgentId"] == "langgraph:chat"
    assert app.http.get("/v1/agents").status_code == 401


def test_free_model_is_served_and_charges_nothing(app: App) -> None:
    key = app.new_account()
    response, events = chat(app, key, {"message": "free please", "model": "free-chat"})
    assert response.status_code == 200 and events[-1][0] == "done"
    [receipt] = app.receipts(response.headers["x-run-id"], 1)
    assert receipt["chargedCredits"] == 0


@pytest.mark.parametrize(
    ("body", "status", "needle"),
    [
        ({"message": "x", "stateKey": "bad key!"}, 400, "stateKey"),
        ({"message": "   "}, 400, "message"),
        ({"message": "x", "graphId": "nonamespace"}, 400, "graphId"),
        ({"message": "x", "runId": "mine"}, 422, "runId"),
        ({"message": "x", "model": "gpt-9-ultra"}, 409, "gpt-4o-mini"),
        ({"message": "x", "graphId": "langgraph:nope"}, 404, "nope"),
    ],
)
def test_bad_requests_get_clear_statuses(app: App, body: dict[str, Any], status: int, needle: str) -> None:
    key = app.new_account()
    response, _ = chat(app, key, body)
    assert response.status_code == status, response.text
    assert needle in response.text
    if status == 409:
        assert response.json()["defaultModelId"] == "gpt-4o-mini"


def test_authentication(app: App) -> None:
    assert app.http.post("/v1/chat", json={"message": "x"}).status_code == 401
    unknown = app.http.post("/v1/chat", json={"message": "x"}, headers={"Authorization": "Bearer nope"})
    assert unknown.status_code == 401 and unknown.json()["error"] == "unauthorized"
    assert app.http.post("/v1/admin/accounts", json={"name": "x"}).status_code == 401
    wrong = app.http.post("/v1/admin/accounts", json={"name": "x"}, headers={"Authorization": "Bearer " + "b" * 40})
    assert wrong.status_code == 403


def test_insufficient_credits_is_402_with_no_run_and_no_records(app: App) -> None:
    key = app.new_account(credits=0)
    llm_calls_before = len(app.stack.spend_rows())
    response, _ = chat(app, key, {"message": "I cannot pay"})
    assert response.status_code == 402
    assert response.json()["error"] == "insufficient_credits"
    activity = app.http.get("/v1/activity", headers={"Authorization": f"Bearer {key}"}).json()
    assert activity["runs"] == [] and activity["balanceCredits"] == 0
    time.sleep(0.3)  # the sink writes asynchronously: give a call that should not exist time to show up
    assert len(app.stack.spend_rows()) == llm_calls_before  # no LLM call was made


@pytest.mark.parametrize(
    ("directive", "status", "code"),
    [("[mock:status=429]", 429, "rate_limit"), ("[mock:status=500]", 503, "internal"), ("[mock:hang]", 408, "timeout")],
)
def test_an_upstream_failure_before_any_output_is_an_http_status(
    app: App, directive: str, status: int, code: str
) -> None:
    key = app.new_account()
    response, _ = chat(app, key, {"message": f"{directive} please"})
    assert response.status_code == status, response.text
    assert response.json()["error"] == code
    assert response.headers["x-run-id"]


def test_a_failure_after_the_stream_started_is_an_error_event_then_done(app: App) -> None:
    key = app.new_account()
    response, events = chat(app, key, {"message": "[mock:tokens=20] [mock:hang_after=3] go"})
    assert response.status_code == 200
    names = [name for name, _ in events]
    assert names[0] == "text_delta" and "assistant_final" not in names
    assert events[-2:] == [("error", {"type": "error", "error": "timeout"}), ("done", {"type": "done"})]


def test_admin_grants_and_balance(app: App) -> None:
    account = app.admin("POST", "/v1/admin/accounts", json={"name": "grant"}).json()
    granted = app.admin("POST", f"/v1/admin/accounts/{account['id']}/credits", json={"amount": 500, "reference": "r1"})
    assert granted.json()["balanceCredits"] == 500
    again = app.admin("POST", f"/v1/admin/accounts/{account['id']}/credits", json={"amount": 500, "reference": "r1"})
    assert again.json()["balanceCredits"] == 500  # same reference: idempotent
    assert app.admin("GET", f"/v1/admin/accounts/{account['id']}/balance").json()["balanceCredits"] == 500
    assert app.admin("GET", "/v1/admin/accounts/nope/balance").status_code == 404


def test_metrics_are_exposed(app: App) -> None:
    text = app.http.get("/metrics").text
    assert "cogni_app_api_chat_requests_total" in text and "cogni_billing_receipts" in text


def test_twenty_concurrent_chats_on_a_balance_for_three_start_three_and_never_overdraw(app: App) -> None:
    """Issue 12, defect 6: each run holds its estimate until it ends, so concurrent chats cannot all pass
    preflight against the same balance."""
    message = "hold the line [mock:tokens=20] [mock:delay_ms=50]"  # a run of about 1 s
    estimate = estimate_credits("gpt-4o-mini", len(message), is_free=False, markup=Decimal("2.0"))
    key = app.new_account(credits=3 * estimate + estimate // 2)
    barrier = threading.Barrier(20)

    def one_chat(_: int) -> tuple[int, str]:
        with httpx.Client(base_url=app.base, timeout=60.0) as client:
            barrier.wait()
            headers = {"Authorization": f"Bearer {key}"}
            with client.stream("POST", "/v1/chat", json={"message": message}, headers=headers) as response:
                response.read()
                return response.status_code, response.headers.get("x-run-id") or response.json()["error"]

    with ThreadPoolExecutor(max_workers=20) as pool:
        outcomes = list(pool.map(one_chat, range(20)))
    # Three runs started (a slow upstream may still fail one with 408 after it started); the rest got 402.
    started = [detail for status, detail in outcomes if status != 402]
    assert len(started) == 3, outcomes
    assert {detail for status, detail in outcomes if status == 402} == {"insufficient_credits"}
    for run_id in (detail for status, detail in outcomes if status == 200):
        assert len(app.receipts(run_id, 1)) == 1
    balance = app.http.get("/v1/activity", headers={"Authorization": f"Bearer {key}"}).json()["balanceCredits"]
    assert 0 <= balance <= 3 * estimate + estimate // 2
    # The three runs ended: their holds are released, so the balance left covers a new chat again.
    response, _ = chat(app, key, {"message": message})
    assert response.status_code != 402


def test_an_oversized_body_is_413_with_or_without_content_length(app: App) -> None:
    """Issue 12, defect 9: an unauthenticated client cannot post an unbounded body (1 MiB default)."""
    big = b'{"message": "' + b"x" * (2 * 1024 * 1024) + b'"}'
    declared = app.http.post("/v1/chat", content=big, headers={"content-type": "application/json"})
    assert declared.status_code == 413
    assert declared.json()["error"] == "payload_too_large"
    assert "1048576 bytes" in declared.json()["message"]

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(big), 64 * 1024):
            yield big[start : start + 64 * 1024]

    chunked = app.http.post("/v1/chat", content=chunks(), headers={"content-type": "application/json"})
    assert "content-length" not in chunked.request.headers
    assert chunked.status_code == 413 and chunked.json()["error"] == "payload_too_large"
    # Under the limit, the same route answers as before (401: no API key).
    assert app.http.post("/v1/chat", json={"message": "hi"}).status_code == 401
