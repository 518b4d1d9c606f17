"""Per-account LiteLLM keys through the whole topology: `cogni-app serve` derives each account's key and sends it
with every run (header `X-Cogni-LLM-Key`), the Agent Server seals it (COGNI_SECRETS_KEY) and hands it to the graph,
the graph calls the real LiteLLM proxy with it, whose custom-auth hook checks it against the app's `llm_keys`
table and whose sink writes the key's hash and account into the spend log.

What a user and an operator would notice: a chat bills the account through its own key; a revoked key refuses
the next chat (403 `llm_key_rejected`) and fails a running chat's next LLM call with an `llm_key_rejected` error
event, a rotated one works at once; a key of another tenant is
refused; the key is in no server table, checkpoint, log line or stream event; a run retried after a `kill -9`
of the server finds its key again, which was stored only as ciphertext and is gone when the run ends.
"""

from __future__ import annotations

import hashlib
import json
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import psycopg
import pytest
from cryptography.fernet import Fernet
from psycopg.rows import dict_row

from cogni_ai_core import LLM_KEY_HEADER
from cogni_app.service_auth import ServiceTokenMinter
from testsupport import ManagedProcess, free_port, fresh_database
from testsupport.databases import every_row
from testsupport.llm_stack import LlmStack, running_llm_stack

pytestmark = [pytest.mark.stack, pytest.mark.proxy, pytest.mark.integration]
ADMIN = "stack-admin-" + "k" * 32
JWT_SECRET = "stack-jwt-" + "s" * 40
AUDIENCE = "cogni-agent-server"
LLM_KEY_SECRET = "stack-llm-keys-" + "q" * 32
SECRETS_KEY = Fernet.generate_key().decode()


@dataclass
class Stack:
    llm: LlmStack
    app_db: str
    server_db: str
    server_port: int
    http: httpx.Client
    server: ManagedProcess
    app: ManagedProcess
    server_logs: list[str] = field(default_factory=list)

    @property
    def server_url(self) -> str:
        return f"http://127.0.0.1:{self.server_port}"

    def admin(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return self.http.request(method, path, headers={"Authorization": f"Bearer {ADMIN}"}, **kwargs)

    def account(self) -> tuple[str, str, str]:
        """(account id, its API key, its virtual key id)."""
        account = self.admin("POST", "/v1/admin/accounts", json={"name": "keys", "initialCredits": 50_000_000}).json()
        key = self.admin("POST", f"/v1/admin/accounts/{account['id']}/api-keys", json={}).json()
        return account["id"], key["apiKey"], key["virtualKeyId"]

    def llm_keys(self, account_id: str) -> list[dict[str, Any]]:
        answer = self.admin("GET", f"/v1/admin/accounts/{account_id}/llm-keys")
        assert answer.status_code == 200, answer.text
        return list(answer.json()["llmKeys"])

    def start_server(self) -> None:
        self.server = ManagedProcess(
            [sys.executable, "-m", "cogni_server", "serve", "--config", "packages/graphs/langgraph.json",
             "--port", str(self.server_port)],
            env={**self.llm.env(), "LANGGRAPH_DATABASE_URL": self.server_db, "COGNI_AUTH_MODE": "jwt",
                 "COGNI_JWT_SECRET": JWT_SECRET, "COGNI_JWT_AUDIENCE": AUDIENCE, "COGNI_SECRETS_KEY": SECRETS_KEY,
                 "COGNI_LEASE_SECONDS": "4", "COGNI_HEARTBEAT_SECONDS": "1", "COGNI_DRAIN_SECONDS": "1",
                 "COGNI_SWEEP_SECONDS": "1", "COGNI_LOG_LEVEL": "debug"},
            name="agent-server",
        )  # fmt: skip
        self.server.wait_http(f"{self.server_url}/ok", timeout=60)

    def server_output(self) -> str:
        return "".join(self.server_logs) + self.server.output()

    def spend_rows_of_run(self, run_id: str, count: int = 1, timeout: float = 30.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while True:
            rows = [r for r in self.llm.spend_rows() if r["spend_logs_metadata"].get("run_id") == run_id]
            if len(rows) >= count or time.monotonic() > deadline:
                return rows
            time.sleep(0.2)


def sse_events(response: httpx.Response) -> list[dict[str, Any]]:
    return [json.loads(line[5:]) for line in response.iter_lines() if line.startswith("data:")]


def chat(stack: Stack, api_key: str, message: str = "Hello") -> tuple[str, list[dict[str, Any]]]:
    """One chat through the app: (its run id, its events)."""
    body = {"message": message, "model": stack.llm.paid_model}
    with stack.http.stream("POST", "/v1/chat", json=body, headers={"Authorization": f"Bearer {api_key}"}) as answer:
        assert answer.status_code == 200, answer.read().decode()
        run_id = answer.headers["X-Run-Id"]
        return run_id, sse_events(answer)


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    with (
        fresh_database("cogni_keys_app") as app_db,
        fresh_database("cogni_keys_srv") as server_db,
        running_llm_stack(keys_database_url=app_db) as llm,
    ):
        server_port, app_port = free_port(), free_port()
        app = None
        stack = Stack(llm, app_db, server_db, server_port, httpx.Client(), None, None)  # type: ignore[arg-type]
        try:
            stack.start_server()
            app = ManagedProcess(
                [sys.executable, "-m", "cogni_app", "serve", "--port", str(app_port)],
                env={**llm.env(), "DATABASE_URL": app_db, "LANGGRAPH_SERVER_URL": stack.server_url,
                     "COGNI_EXECUTOR": "server", "COGNI_JWT_SECRET": JWT_SECRET, "COGNI_ADMIN_TOKEN": ADMIN,
                     "COGNI_LLM_KEY_SECRET": LLM_KEY_SECRET, "COGNI_RECONCILE_DELAY_SECONDS": "0.5",
                     "COGNI_RECONCILE_INTERVAL_SECONDS": "0"},
                name="cogni-app",
            )  # fmt: skip
            app.wait_http(f"http://127.0.0.1:{app_port}/healthz", timeout=60)
            with httpx.Client(base_url=f"http://127.0.0.1:{app_port}", timeout=60.0) as http:
                stack.http, stack.app = http, app
                yield stack
        finally:
            if app is not None:
                app.stop()
            stack.server.stop()


def test_a_chat_calls_litellm_with_the_accounts_own_key(stack: Stack) -> None:
    account, api_key, _ = stack.account()
    run_id, events = chat(stack, api_key)
    assert events[-1]["type"] == "done" and not [e for e in events if e["type"] == "error"], events
    keys = stack.llm_keys(account)  # minted on the account's first run
    assert len(keys) == 1 and keys[0]["revokedAt"] is None and "llmKey" not in keys[0]
    [row] = stack.spend_rows_of_run(run_id)
    assert (row["key_alias"], row["key_user_id"], row["end_user"]) == (f"llm-key:{keys[0]['id']}", account, account)
    with psycopg.connect(stack.app_db, row_factory=dict_row) as conn:
        stored = conn.execute("SELECT key_hash FROM llm_keys WHERE id = %s", (keys[0]["id"],)).fetchone()
    assert stored is not None and row["key_hash"] == stored["key_hash"]
    deadline = time.monotonic() + 20  # the relay bills after the chat's `done` (as test_stack_app_billing polls)
    while True:
        with psycopg.connect(stack.app_db, row_factory=dict_row) as conn:
            receipts = conn.execute("SELECT * FROM charge_receipts WHERE run_id = %s", (run_id,)).fetchall()
        if receipts or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert [r["litellm_call_id"] for r in receipts] == [row["call_id"]]


def test_a_revoked_key_ends_the_next_chat_with_a_clear_error_and_a_new_one_works(stack: Stack) -> None:
    account, api_key, _ = stack.account()
    chat(stack, api_key)
    [key] = stack.llm_keys(account)
    revoked = stack.admin("POST", f"/v1/admin/llm-keys/{key['id']}/revoke")
    assert revoked.status_code == 200 and revoked.json()["revokedAt"] is not None

    # The run fails at its first LLM call, before any output: the app answers the chat with the error's code
    # (after output it would be an `error` event; the server's stream carries it either way, see below).
    started = time.monotonic()
    body = {"message": "Hello", "model": stack.llm.paid_model}
    refused = stack.http.post("/v1/chat", json=body, headers={"Authorization": f"Bearer {api_key}"})
    assert (refused.status_code, refused.json()["error"]) == (403, "llm_key_rejected"), refused.text
    assert refused.headers["X-Run-Id"]
    assert time.monotonic() - started < 30  # an answer, not a hang until some timeout
    # refused by the proxy's auth: no upstream call, nothing billed
    assert all(r["spend"] == 0 for r in stack.spend_rows_of_run(refused.headers["X-Run-Id"], timeout=2))
    assert stack.admin("POST", f"/v1/admin/llm-keys/{key['id']}/rotate").status_code == 409  # revocation is final

    minted = stack.admin("POST", f"/v1/admin/accounts/{account}/llm-keys", json={"rpmLimit": 100})
    assert minted.status_code == 201 and minted.headers["Cache-Control"] == "no-store"
    new = minted.json()
    assert new["llmKey"].startswith("sk-cogni-") and new["rpmLimit"] == 100
    run_id, events = chat(stack, api_key)
    assert events[-1]["type"] == "done" and not [e for e in events if e["type"] == "error"], events
    [row] = stack.spend_rows_of_run(run_id)
    assert row["key_hash"] == hashlib.sha256(new["llmKey"].encode()).hexdigest()

    rotated = stack.admin("POST", f"/v1/admin/llm-keys/{new['id']}/rotate").json()
    assert rotated["replaces"] == new["id"] and rotated["llmKey"] != new["llmKey"]
    run_id, events = chat(stack, api_key)
    assert events[-1]["type"] == "done" and not [e for e in events if e["type"] == "error"], events
    [row] = stack.spend_rows_of_run(run_id)
    assert row["key_alias"] == f"llm-key:{rotated['id']}"
    listed = stack.llm_keys(account)
    assert [k["id"] for k in listed if k["revokedAt"] is None] == [rotated["id"]]
    assert not any(new["llmKey"] in json.dumps(k) or rotated["llmKey"] in json.dumps(k) for k in listed)


def test_a_key_revoked_while_a_chat_runs_fails_its_next_llm_call_with_an_error_event(stack: Stack) -> None:
    """The issue's case: a chat is streaming (its first LLM call passed LiteLLM's check), the key is revoked, and
    the chat's next LLM call is refused: the stream the client is reading carries `error` `llm_key_rejected`, then
    `done`, within seconds, instead of hanging. (A chat whose *first* call is refused answers 403, above.)"""
    account, api_key, _ = stack.account()
    chat(stack, api_key)  # mints the account's key
    [key] = stack.llm_keys(account)
    revoked_at: list[float] = []
    with psycopg.connect(stack.server_db, autocommit=True) as conn:  # the first chat's run may still be ending
        earlier = [r[0] for r in conn.execute("SELECT run_id FROM runs WHERE owner = %s", (account,))]

    def revoke_during_the_first_call() -> None:
        """Once the chat's run is running (its first call under way: the tool call streams slowly), revoke."""
        running = "SELECT 1 FROM runs WHERE owner = %s AND status = 'running' AND NOT (run_id = ANY(%s))"
        with psycopg.connect(stack.server_db, autocommit=True) as conn:
            deadline = time.monotonic() + 30
            while not conn.execute(running, (account, earlier)).fetchone():
                if time.monotonic() > deadline:
                    return
                time.sleep(0.02)
        time.sleep(1.0)  # well inside the first call (three argument pieces, 1.5 s apart)
        stack.admin("POST", f"/v1/admin/llm-keys/{key['id']}/revoke")
        revoked_at.append(time.monotonic())

    # the research graph: call 1 asks for the calculator (streamed slowly), the tool runs, call 2 would answer
    message = 'call core__calculator {"expression": "2+2"} [mock:delay_ms=1500]'
    body = {"message": message, "model": stack.llm.paid_model, "graphId": "langgraph:research"}
    revoker = threading.Thread(target=revoke_during_the_first_call)
    revoker.start()
    started = time.monotonic()
    try:
        with stack.http.stream("POST", "/v1/chat", json=body, headers={"Authorization": f"Bearer {api_key}"}) as answer:
            assert answer.status_code == 200, answer.read().decode()
            events = sse_events(answer)
    finally:
        revoker.join()
    assert revoked_at, "the revocation never happened"
    kinds = [e["type"] for e in events]
    assert "tool_call_start" in kinds, events  # output reached the client before the refused call
    assert events[-2:] == [{"type": "error", "error": "llm_key_rejected"}, {"type": "done"}], events
    assert time.monotonic() - started < 30  # an answer, not a hang
    rows = stack.spend_rows_of_run(answer.headers["X-Run-Id"], timeout=5)
    assert [r["status"] for r in rows if r["spend"] > 0] == ["success"]  # only the first call reached upstream


def _direct_run(stack: Stack, account: str, virtual_key: str, key: str, message: str, **body: Any) -> httpx.Response:
    token = ServiceTokenMinter(JWT_SECRET, audience=AUDIENCE, ttl_seconds=300).mint(account)
    config = {"configurable": {"model": stack.llm.paid_model, "runId": f"run-{uuid.uuid4().hex[:10]}",
                               "billingAccountId": account, "virtualKeyId": virtual_key}}  # fmt: skip
    payload = {"assistant_id": "chat", "input": {"messages": [{"role": "user", "content": message}]}, "config": config}
    return httpx.post(
        f"{stack.server_url}{body.pop('path', '/runs/wait')}",
        json={**payload, **body},
        headers={"Authorization": f"Bearer {token}", LLM_KEY_HEADER: key},
        timeout=60,
    )


def test_a_key_of_another_tenant_is_refused(stack: Stack) -> None:
    mine, _, my_vkey = stack.account()
    other, _, _ = stack.account()
    other_key = stack.admin("POST", f"/v1/admin/accounts/{other}/llm-keys", json={}).json()["llmKey"]
    refused = _direct_run(stack, mine, my_vkey, other_key, "Hello")
    assert refused.status_code == 403 and LLM_KEY_HEADER in refused.text
    assert other_key not in refused.text
    malformed = _direct_run(stack, mine, my_vkey, "sk-not-ours", "Hello")
    assert malformed.status_code == 422, malformed.text
    token = ServiceTokenMinter(JWT_SECRET, audience=AUDIENCE, ttl_seconds=300).mint(mine)
    elsewhere = httpx.post(  # a route that creates no run would ignore the key: refused instead
        f"{stack.server_url}/threads", json={}, headers={"Authorization": f"Bearer {token}", LLM_KEY_HEADER: other_key}
    )
    assert elsewhere.status_code == 422 and LLM_KEY_HEADER in elsewhere.text


def test_a_revoked_key_fails_the_servers_run_with_an_llm_key_rejected_error_event(stack: Stack) -> None:
    account, _, vkey = stack.account()
    issued = stack.admin("POST", f"/v1/admin/accounts/{account}/llm-keys", json={}).json()
    stack.admin("POST", f"/v1/admin/llm-keys/{issued['id']}/revoke")
    token = ServiceTokenMinter(JWT_SECRET, audience=AUDIENCE, ttl_seconds=300).mint(account)
    config = {"configurable": {"model": stack.llm.paid_model, "runId": "run-revoked", "billingAccountId": account,
                               "virtualKeyId": vkey}}  # fmt: skip
    started = time.monotonic()
    with httpx.stream(
        "POST",
        f"{stack.server_url}/runs/stream",
        json={"assistant_id": "chat", "input": {"messages": [{"role": "user", "content": "Hi"}]}, "config": config},
        headers={"Authorization": f"Bearer {token}", LLM_KEY_HEADER: issued["llmKey"]},
        timeout=60,
    ) as answer:
        text = answer.read().decode()
    assert time.monotonic() - started < 30
    error = json.loads(text.split("event: error", 1)[1].split("data:", 1)[1].split("\n", 1)[0])
    assert error["error"] == "LlmCallError" and error["message"].startswith("llm_key_rejected: ")
    assert issued["llmKey"] not in text


def table_texts(url: str) -> dict[str, str]:
    """Every table of the database (from the catalogue) as the text of all its rows (bytea shows as hex)."""
    return {name: "\n".join(rows) for name, rows in every_row(url).items()}


def test_the_key_is_in_no_table_checkpoint_log_or_event_of_the_server(stack: Stack) -> None:
    account, _, vkey = stack.account()
    key = stack.admin("POST", f"/v1/admin/accounts/{account}/llm-keys", json={}).json()["llmKey"]
    secret_part = key.rsplit(".", 1)[1]
    needles = {key, secret_part, key.encode().hex(), secret_part.encode().hex()}
    modes = ["values", "updates", "messages-tuple", "custom", "debug", "events", "tasks", "checkpoints"]
    token = ServiceTokenMinter(JWT_SECRET, audience=AUDIENCE, ttl_seconds=300).mint(account)
    thread = httpx.post(f"{stack.server_url}/threads", json={}, headers={"Authorization": f"Bearer {token}"})
    thread_id = thread.json()["thread_id"]
    seen: list[str] = []
    for _ in range(2):  # the second run reads the first one's checkpoint
        with httpx.stream(
            "POST",
            f"{stack.server_url}/threads/{thread_id}/runs/stream",
            json={"assistant_id": "chat", "input": {"messages": [{"role": "user", "content": "Hello"}]},
                  "stream_mode": modes, "stream_subgraphs": True,
                  "config": {"configurable": {"model": stack.llm.paid_model, "runId": f"run-{uuid.uuid4().hex[:8]}",
                                              "billingAccountId": account, "virtualKeyId": vkey}}},
            headers={"Authorization": f"Bearer {token}", LLM_KEY_HEADER: key},
            timeout=60,
        ) as answer:  # fmt: skip
            assert answer.status_code == 200, answer.read().decode()
            seen.append(answer.read().decode())
        assert "event: error" not in seen[-1], seen[-1][-2000:]
    auth = {"Authorization": f"Bearer {token}"}
    for path in (f"/threads/{thread_id}", f"/threads/{thread_id}/state", f"/threads/{thread_id}/runs"):
        seen.append(httpx.get(f"{stack.server_url}{path}", headers=auth).text)
    seen.append(httpx.post(f"{stack.server_url}/threads/{thread_id}/history", json={}, headers=auth).text)
    assert '"usage"' in seen[0] and "checkpoints" in seen[0]  # the streams did carry the run's content

    texts = table_texts(stack.server_db)
    assert {"public.runs", "public.checkpoints", "public.checkpoint_blobs", "public.run_secrets"} <= set(texts)
    leaks = {name for name, text in texts.items() if any(n in text for n in needles)}
    assert leaks == set()
    shown = [text[max(text.find(n) - 600, 0) : text.find(n) + 100] for n in needles for text in seen if n in text]
    assert shown == []
    assert not any(n in stack.server_output() for n in needles)
    assert key not in stack.app.output()
    assert texts["public.run_secrets"] == ""  # both runs ended: their sealed keys are gone


def test_a_run_retried_after_a_kill_finds_its_key_which_was_stored_only_encrypted(stack: Stack) -> None:
    account, _, vkey = stack.account()
    key = stack.admin("POST", f"/v1/admin/accounts/{account}/llm-keys", json={}).json()["llmKey"]
    created = _direct_run(stack, account, vkey, key, "[mock:delay_ms=400] Hello", path="/runs", on_completion="keep")
    assert created.status_code == 200, created.text
    run_id = created.json()["run_id"]
    with psycopg.connect(stack.server_db, autocommit=True, row_factory=dict_row) as conn:
        deadline = time.monotonic() + 30
        while conn.execute("SELECT status FROM runs WHERE run_id = %s", (run_id,)).fetchone()["status"] != "running":
            assert time.monotonic() < deadline, "the run never started"
            time.sleep(0.05)
        sealed = conn.execute("SELECT llm_key FROM run_secrets WHERE run_id = %s", (run_id,)).fetchone()
    assert sealed is not None
    ciphertext = bytes(sealed["llm_key"])
    assert key.encode() not in ciphertext and Fernet(SECRETS_KEY.encode()).decrypt(ciphertext).decode() == key

    stack.server.kill()  # mid-run: the LLM call is still streaming from the slow mock
    stack.server_logs.append(stack.server.output())
    stack.start_server()

    with psycopg.connect(stack.server_db, autocommit=True, row_factory=dict_row) as conn:
        deadline = time.monotonic() + 90
        while (run := conn.execute("SELECT status, attempt FROM runs WHERE run_id = %s", (run_id,)).fetchone())[
            "status"
        ] in ("pending", "running"):
            assert time.monotonic() < deadline, "the retried run did not finish"
            time.sleep(0.2)
        assert (run["status"], run["attempt"]) == ("success", 2)
        assert conn.execute("SELECT count(*) AS n FROM run_secrets").fetchone()["n"] == 0
    rows = [r for r in stack.llm.spend_rows() if r["key_user_id"] == account and r["status"] == "success"]
    assert rows and all(r["key_hash"] == hashlib.sha256(key.encode()).hexdigest() for r in rows)
