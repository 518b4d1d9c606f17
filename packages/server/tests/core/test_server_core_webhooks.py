"""Webhooks: one signed POST per finished run (success, error, interrupted, cancelled, cancelled
before it started), retries on 5xx only, refusals at creation (422) and at send time (on the run
and in a metric), and delivery after the server is killed between a run's end and its webhook."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from langgraph_sdk import get_client
from langgraph_sdk.client import LangGraphClient

from testsupport import free_port, fresh_database

from .conftest import KEY_A
from .helpers import wait_status
from .jobs_support import SECRET, STATIC_TOKEN, Receiver, receiver, start_jobs_server, write_project

HI = {"messages": [{"role": "user", "content": "hi"}]}


@dataclass
class Hooked:
    url: str
    hooks: Receiver
    project: Path


@pytest.fixture(scope="module")
def hooked(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hooked]:
    project = write_project(tmp_path_factory.mktemp("webhook-project"))
    with fresh_database("cogni_webhooks") as db, receiver() as hooks:
        port = free_port()
        proc = start_jobs_server(db, port, project, name="webhooks")
        try:
            yield Hooked(f"http://127.0.0.1:{port}", hooks, project)
        finally:
            proc.stop()


@pytest.fixture
async def client(hooked: Hooked) -> AsyncIterator[LangGraphClient]:
    c = get_client(url=hooked.url, api_key=KEY_A)
    try:
        yield c
    finally:
        await c.aclose()


def _path(kind: str) -> str:
    return f"/{kind}/{uuid.uuid4().hex}"


async def _delivery_outcome(client: LangGraphClient, thread_id: str, run_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 15
    while True:
        run = await client.runs.get(thread_id, run_id)
        outcome = run["metadata"].get("webhook_delivery")
        if outcome or time.monotonic() > deadline:
            assert outcome, f"no webhook outcome on run {run_id}"
            return dict(outcome)
        await asyncio.sleep(0.1)


async def test_success_payload_headers_and_signature(client: LangGraphClient, hooked: Hooked) -> None:
    tid = (await client.threads.create())["thread_id"]
    path = _path("ok") + "?q=1"
    out = await client.runs.wait(tid, "echo", input=HI, webhook=hooked.hooks.url(path), metadata={"m": 1})
    [got] = hooked.hooks.wait(path)
    body = got.json()
    assert body["status"] == "success" and body["thread_id"] == tid and body["metadata"]["m"] == 1
    assert body["values"] == out and "error" not in body
    for key in ("run_id", "assistant_id", "kwargs", "created_at", "run_started_at", "run_ended_at", "webhook_sent_at"):
        assert body[key], key
    headers = got.headers
    assert headers["content-type"] == "application/json"
    assert headers["user-agent"].startswith("cogni-agent-server")
    assert headers["authorization"] == f"Bearer {STATIC_TOKEN}" and headers["x-static-header"] == "static"
    signed = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + got.body
    expected = base64.b64encode(hmac.new(SECRET.encode(), signed, hashlib.sha256).digest()).decode()
    assert headers["webhook-signature"] == f"v1,{expected}"
    assert abs(int(headers["webhook-timestamp"]) - time.time()) < 60
    outcome = await _delivery_outcome(client, tid, body["run_id"])
    assert outcome == {
        "delivery_id": headers["webhook-id"],
        "status": "delivered",
        "attempts": 1,
        "response_status": 200,
        "error": None,
    }


async def test_every_terminal_status_delivers_once(client: LangGraphClient, hooked: Hooked) -> None:
    tid = (await client.threads.create())["thread_id"]
    paths = {name: _path(name) for name in ("error", "interrupt", "cancel", "pending")}
    await client.runs.wait(tid, "failing", input={}, webhook=hooked.hooks.url(paths["error"]), raise_error=False)
    await client.runs.wait(tid, "approval", input={"request": "x"}, webhook=hooked.hooks.url(paths["interrupt"]))
    slow_tid = (await client.threads.create())["thread_id"]
    slow = await client.runs.create(
        slow_tid, "slow", input={"delay": 0.2, "steps": 50}, webhook=hooked.hooks.url(paths["cancel"])
    )
    queued = await client.runs.create(slow_tid, "echo", input=HI, webhook=hooked.hooks.url(paths["pending"]))
    await wait_status(client, slow_tid, slow["run_id"], {"running"})
    await client.runs.cancel(slow_tid, queued["run_id"])  # never started
    await client.runs.cancel(slow_tid, slow["run_id"], wait=True)
    expected = {"error": "error", "interrupt": "interrupted", "cancel": "interrupted", "pending": "interrupted"}
    for name, status in expected.items():
        [got] = hooked.hooks.wait(paths[name])
        assert got.json()["status"] == status, name
    assert hooked.hooks.on(paths["error"])[0].json()["error"]["error"] == "ValueError"
    await asyncio.sleep(1.0)
    assert all(len(hooked.hooks.on(p)) == 1 for p in paths.values())


async def test_5xx_is_retried_with_the_same_id_and_4xx_is_not(client: LangGraphClient, hooked: Hooked) -> None:
    tid = (await client.threads.create())["thread_id"]
    flaky, gone = "/status/500/2/" + uuid.uuid4().hex, "/status/404/99/" + uuid.uuid4().hex
    run = await client.runs.create(tid, "echo", input=HI, webhook=hooked.hooks.url(flaky))
    got = hooked.hooks.wait(flaky, 3)
    assert len({g.headers["webhook-id"] for g in got}) == 1
    assert (await _delivery_outcome(client, tid, run["run_id"]))["attempts"] == 3
    run = await client.runs.create(tid, "echo", input=HI, webhook=hooked.hooks.url(gone))
    hooked.hooks.wait(gone)
    outcome = await _delivery_outcome(client, tid, run["run_id"])
    assert outcome["status"] == "failed" and outcome["response_status"] == 404
    await asyncio.sleep(1.0)
    assert len(hooked.hooks.on(gone)) == 1


async def test_destinations_outside_the_allowlist_are_refused(client: LangGraphClient, hooked: Hooked) -> None:
    tid = (await client.threads.create())["thread_id"]
    async with httpx.AsyncClient(base_url=hooked.url, headers={"x-api-key": KEY_A}) as http:
        for url, words in (
            ("http://example.com/hook", "not in the webhook allowlist"),
            ("ftp://127.0.0.1/x", "scheme 'ftp'"),
            ("not a url", "no host"),
        ):
            r = await http.post(f"/threads/{tid}/runs", json={"assistant_id": "echo", "webhook": url})
            assert r.status_code == 422 and words in r.json()["detail"], r.text
        metrics = (await http.get("/metrics")).text
    assert 'cogni_webhooks_refused_total{stage="create"}' in metrics


def _outbox(db: str, run_id: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(db, autocommit=True) as conn:
        return conn.execute("SELECT status, attempts FROM webhook_outbox WHERE run_id = %s", (run_id,)).fetchall()


async def _finished_run_with_webhook(url: str, hook: str) -> tuple[str, str]:
    c = get_client(url=url, api_key=KEY_A)
    try:
        tid = (await c.threads.create())["thread_id"]
        run = await c.runs.create(tid, "echo", input=HI, webhook=hook)
        await c.runs.join(tid, run["run_id"])
        return tid, run["run_id"]
    finally:
        await c.aclose()


async def test_kill_9_between_run_end_and_delivery(hooked: Hooked) -> None:
    """A server whose deliverer will not look again for an hour is SIGKILLed after the run ended;
    the next server delivers exactly once. Then a server without the allowlist refuses at send time."""
    slow_poll = {"COGNI_WEBHOOK_POLL_SECONDS": "3600"}
    with fresh_database("cogni_webhooks_kill") as db, receiver() as hooks:
        port = free_port()
        first = start_jobs_server(db, port, hooked.project, name="webhooks-doomed", **slow_poll)
        try:
            await asyncio.sleep(0.5)  # past the deliverer's first (empty) poll
            tid, run_id = await _finished_run_with_webhook(f"http://127.0.0.1:{port}", hooks.url("/durable"))
            assert _outbox(db, run_id) == [("pending", 0)]
            first.kill()
        finally:
            first.stop()
        assert hooks.on("/durable") == []
        port = free_port()
        second = start_jobs_server(db, port, hooked.project, name="webhooks-after-restart")
        try:
            [got] = hooks.wait("/durable")
            assert got.json()["run_id"] == run_id
            await asyncio.sleep(1.5)
            assert len(hooks.on("/durable")) == 1
            assert _outbox(db, run_id) == [("delivered", 1)]
        finally:
            second.stop()

        port = free_port()
        third = start_jobs_server(db, port, hooked.project, name="webhooks-allowlisted", **slow_poll)
        try:
            await asyncio.sleep(0.5)
            tid, run_id = await _finished_run_with_webhook(f"http://127.0.0.1:{port}", hooks.url("/refused"))
        finally:
            third.stop()
        port = free_port()
        strict = start_jobs_server(db, port, hooked.project, name="webhooks-strict", COGNI_WEBHOOK_ALLOWED_DOMAINS="")
        try:
            c = get_client(url=f"http://127.0.0.1:{port}", api_key=KEY_A)
            outcome = await _delivery_outcome(c, tid, run_id)
            assert outcome["status"] == "refused" and "loopback" in outcome["error"]
            metrics = (await c.http.client.get("/metrics")).text
            assert 'cogni_webhook_deliveries_total{outcome="refused"} 1.0' in metrics
            assert 'cogni_webhooks_refused_total{stage="send"} 1.0' in metrics
            await c.aclose()
        finally:
            strict.stop()
        assert hooks.on("/refused") == []
