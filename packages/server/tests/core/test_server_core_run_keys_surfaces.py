"""The per-account LLM key on every surface that creates runs besides run creation (docs/compliance.md,
"Per-account LiteLLM keys"): the thread-streaming commands (HTTP and WebSocket), A2A, MCP and crons. Each run they
start gets the caller's key as ``configurable.__cogni_llm_key`` (the ``keyprobe`` graph answers its SHA-256); the key
is checked as on run creation (422 malformed, 403 another tenant's); a cron keeps it sealed beside itself for its
later runs, shows it in no answer, replaces it on a PATCH and loses it with the cron or the tenant's purge; and no
table ever holds it in clear."""

from __future__ import annotations

import asyncio
import hashlib
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import httpx2
import psycopg
import pytest
from cryptography.fernet import Fernet
from mcp.client.session import ClientSession
from mcp.client.streamable_http import streamable_http_client
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from cogni_ai_core import LLM_KEY_HEADER, compose_llm_key
from testsupport import free_port, fresh_database
from testsupport.databases import every_row

from .conftest import KEY_A, KEY_B, PROJECT, Server, start_server

pytestmark = pytest.mark.integration
SECRETS_KEY = Fernet.generate_key().decode()
OPERATOR = "run-keys-operator-" + "o" * 24
KEY = compose_llm_key("tenant-a", "a-secret-of-tenant-a")
OTHER_TENANTS_KEY = compose_llm_key("tenant-b", "a-secret-of-tenant-b")
NONE = "llm-key-sha256:none"


def seen(key: str) -> str:
    """What the keyprobe graph answers when its run was given ``key``."""
    return f"llm-key-sha256:{hashlib.sha256(key.encode()).hexdigest()}"


def needles(key: str) -> set[str]:
    secret = key.rsplit(".", 1)[1]
    return {key, secret, key.encode().hex(), secret.encode().hex()}


@pytest.fixture(scope="module")
def keyed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    project = tmp_path_factory.mktemp("run-keys") / "langgraph.json"
    graph = PROJECT.parent / "run_key_graphs.py"
    project.write_text(json.dumps({"graphs": {"keyprobe": f"{graph}:keyprobe"}}))
    with fresh_database("cogni_run_keys") as db:
        port = free_port()
        proc = start_server(
            db,
            port,
            project=project,
            name="run-keys",
            COGNI_SECRETS_KEY=SECRETS_KEY,
            COGNI_OPERATOR_TOKEN=OPERATOR,
            COGNI_CRON_ALLOW_SECONDS="true",
            COGNI_CRON_POLL_SECONDS="0.1",
        )
        try:
            yield Server(f"http://127.0.0.1:{port}", db, proc)
        finally:
            proc.stop()


@pytest.fixture
async def http(keyed: Server) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=keyed.url, headers={"x-api-key": KEY_A}, timeout=30) as client:
        yield client


def user(text: str) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": text}]}


async def new_thread(http: httpx.AsyncClient) -> str:
    answer = await http.post("/threads", json={})
    assert answer.status_code == 200, answer.text
    return str(answer.json()["thread_id"])


async def last_reply(http: httpx.AsyncClient, thread_id: str, run_id: str) -> str:
    joined = await http.get(f"/threads/{thread_id}/runs/{run_id}/join")
    assert joined.status_code == 200, joined.text
    return str(joined.json()["messages"][-1]["content"])


def command(cid: int, method: str, params: dict[str, Any]) -> dict[str, Any]:
    return {"id": cid, "method": method, "params": params}


def table_texts(url: str) -> dict[str, str]:
    """Every table of the database (from the catalogue) as the text of all its rows (bytea shows as hex)."""
    return {name: "\n".join(rows) for name, rows in every_row(url).items()}


def assert_in_no_table(url: str, key: str) -> None:
    leaks = {name for name, text in table_texts(url).items() if any(n in text for n in needles(key))}
    assert leaks == set()


async def test_a_thread_command_starts_its_run_with_the_callers_key(http: httpx.AsyncClient, keyed: Server) -> None:
    tid = await new_thread(http)
    start = command(1, "run.start", {"assistant_id": "keyprobe", "input": user("hi")})
    answer = await http.post(f"/threads/{tid}/commands", json=start, headers={LLM_KEY_HEADER: KEY})
    assert answer.status_code == 200 and answer.json()["type"] == "success", answer.text
    assert await last_reply(http, tid, answer.json()["result"]["run_id"]) == seen(KEY)

    plain = await http.post(f"/threads/{tid}/commands", json={**start, "id": 2})  # no header: the shared key
    assert await last_reply(http, tid, plain.json()["result"]["run_id"]) == NONE

    other = await http.post(f"/threads/{tid}/commands", json=start, headers={LLM_KEY_HEADER: OTHER_TENANTS_KEY})
    malformed = await http.post(f"/threads/{tid}/commands", json=start, headers={LLM_KEY_HEADER: "sk-1234"})
    assert (other.status_code, malformed.status_code) == (403, 422)
    assert LLM_KEY_HEADER in other.text and OTHER_TENANTS_KEY not in other.text
    assert_in_no_table(keyed.database_url, KEY)


async def test_a_websocket_starts_its_runs_with_the_key_of_its_upgrade(http: httpx.AsyncClient, keyed: Server) -> None:
    tid = await new_thread(http)
    url = keyed.url.replace("http://", "ws://") + f"/threads/{tid}/stream/events"
    async with connect(url, additional_headers={"x-api-key": KEY_A, LLM_KEY_HEADER: KEY}) as ws:
        await ws.send(json.dumps(command(1, "run.start", {"assistant_id": "keyprobe", "input": user("hi")})))
        while (reply := json.loads(await asyncio.wait_for(ws.recv(), 10))).get("id") != 1:
            pass
    assert reply["type"] == "success", reply
    assert await last_reply(http, tid, reply["result"]["run_id"]) == seen(KEY)

    async with connect(url, additional_headers={"x-api-key": KEY_A, LLM_KEY_HEADER: OTHER_TENANTS_KEY}) as ws:
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(ws.recv(), 10)
    assert ws.close_code == 4403 and ws.close_reason and OTHER_TENANTS_KEY not in ws.close_reason


def _a2a_message(text: str) -> dict[str, Any]:
    message = {"role": "user", "messageId": uuid.uuid4().hex, "parts": [{"kind": "text", "text": text}]}
    return {"jsonrpc": "2.0", "id": "r1", "method": "message/send", "params": {"message": message}}


async def test_an_a2a_message_runs_with_the_callers_key(http: httpx.AsyncClient) -> None:
    answer = await http.post("/a2a/keyprobe", json=_a2a_message("hi"), headers={LLM_KEY_HEADER: KEY})
    assert answer.status_code == 200, answer.text
    task = json.loads(answer.text)["result"]
    assert task["status"]["state"] == "completed", task
    assert seen(KEY) in json.dumps(task["artifacts"])
    plain = json.loads((await http.post("/a2a/keyprobe", json=_a2a_message("hi"))).text)["result"]
    assert NONE in json.dumps(plain["artifacts"])
    other = await http.post("/a2a/keyprobe", json=_a2a_message("hi"), headers={LLM_KEY_HEADER: OTHER_TENANTS_KEY})
    assert other.status_code == 403 and OTHER_TENANTS_KEY not in other.text


@asynccontextmanager
async def mcp_session(server: Server, headers: dict[str, str]) -> AsyncIterator[ClientSession]:
    async with (
        httpx2.AsyncClient(headers={"x-api-key": KEY_A, **headers}, timeout=30) as client,
        streamable_http_client(f"{server.url}/mcp", http_client=client) as (read, write),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        yield session


async def test_an_mcp_tool_call_runs_with_the_callers_key(http: httpx.AsyncClient, keyed: Server) -> None:
    async with mcp_session(keyed, {LLM_KEY_HEADER: KEY}) as session:
        keyed_result = await session.call_tool("keyprobe", user("hi"))
    async with mcp_session(keyed, {}) as session:
        plain_result = await session.call_tool("keyprobe", user("hi"))
    assert not keyed_result.is_error and seen(KEY) in keyed_result.content[0].text  # type: ignore[union-attr]
    assert NONE in plain_result.content[0].text  # type: ignore[union-attr]
    init = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
    accept = {"accept": "application/json, text/event-stream"}
    other = await http.post("/mcp", json=init, headers={**accept, LLM_KEY_HEADER: OTHER_TENANTS_KEY})
    malformed = await http.post("/mcp", json=init, headers={**accept, LLM_KEY_HEADER: "sk-nope"})
    assert (other.status_code, malformed.status_code) == (403, 422)
    assert OTHER_TENANTS_KEY not in other.text


async def _cron_runs(http: httpx.AsyncClient, thread_id: str, n: int) -> list[dict[str, Any]]:
    """Wait until the thread has at least ``n`` finished cron runs; all its runs, newest first."""
    for _ in range(200):
        runs = (await http.get(f"/threads/{thread_id}/runs", params={"limit": 100})).json()
        if sum(r["status"] == "success" for r in runs) >= n:
            return list(runs)
        await asyncio.sleep(0.1)
    raise AssertionError(f"fewer than {n} cron runs finished on {thread_id}: {runs}")


async def test_a_cron_keeps_its_key_sealed_for_its_runs_and_never_shows_it(
    http: httpx.AsyncClient, keyed: Server
) -> None:
    tid = await new_thread(http)
    body = {"assistant_id": "keyprobe", "schedule": "* * * * * *", "input": user("tick")}
    created = await http.post(f"/threads/{tid}/runs/crons", json=body, headers={LLM_KEY_HEADER: KEY})
    assert created.status_code == 200, created.text
    cron_id = created.json()["cron_id"]
    runs = await _cron_runs(http, tid, 1)
    done = next(r for r in runs if r["status"] == "success")
    assert await last_reply(http, tid, done["run_id"]) == seen(KEY)  # a run the scheduler fired got the key

    with psycopg.connect(keyed.database_url, autocommit=True) as conn:
        row = conn.execute("SELECT llm_key FROM cron_secrets WHERE cron_id = %s", (cron_id,)).fetchone()
    assert row is not None and Fernet(SECRETS_KEY.encode()).decrypt(bytes(row[0])).decode() == KEY
    answers = [
        created.text,
        (await http.get(f"/runs/crons/{cron_id}")).text,
        (await http.post("/runs/crons/search", json={"thread_id": tid})).text,
        (await http.get(f"/threads/{tid}/runs", params={"limit": 100})).text,
        (await http.get(f"/threads/{tid}/state")).text,
    ]
    assert not [a for a in answers if any(n in a for n in needles(KEY))]

    rotated = compose_llm_key("tenant-a", "the-rotated-secret")
    before = {r["run_id"] for r in (await http.get(f"/threads/{tid}/runs", params={"limit": 100})).json()}
    patched = await http.patch(f"/runs/crons/{cron_id}", json={}, headers={LLM_KEY_HEADER: rotated})
    assert patched.status_code == 200 and rotated not in patched.text, patched.text
    later: list[dict[str, Any]] = []
    for _ in range(100):  # a run fired after the PATCH gets the new key
        runs = (await http.get(f"/threads/{tid}/runs", params={"limit": 100})).json()
        later = [r for r in runs if r["run_id"] not in before and r["status"] == "success"]
        if later:
            break
        await asyncio.sleep(0.1)
    assert later and await last_reply(http, tid, later[0]["run_id"]) == seen(rotated)

    assert (await http.delete(f"/runs/crons/{cron_id}")).status_code == 204
    for _ in range(200):  # the runs fired before the delete end
        runs = (await http.get(f"/threads/{tid}/runs", params={"limit": 100})).json()
        if all(r["status"] not in ("pending", "running") for r in runs):
            break
        await asyncio.sleep(0.1)
    texts = table_texts(keyed.database_url)
    assert texts["public.cron_secrets"] == "" and texts["public.run_secrets"] == ""  # gone with the cron and runs
    assert_in_no_table(keyed.database_url, KEY)
    assert_in_no_table(keyed.database_url, rotated)


async def test_a_cron_refuses_a_key_that_is_not_the_callers(http: httpx.AsyncClient) -> None:
    body = {"assistant_id": "keyprobe", "schedule": "0 0 1 1 *", "input": user("tick")}
    other = await http.post("/runs/crons", json=body, headers={LLM_KEY_HEADER: OTHER_TENANTS_KEY})
    malformed = await http.post("/runs/crons", json=body, headers={LLM_KEY_HEADER: "sk-cogni-"})
    searched = await http.post("/runs/crons/search", json={}, headers={LLM_KEY_HEADER: KEY})
    assert (other.status_code, malformed.status_code, searched.status_code) == (403, 422, 422)
    assert not (await http.post("/runs/crons/search", json={})).json()  # nothing was created


async def test_a_tenant_purge_takes_its_crons_keys(keyed: Server) -> None:
    key_b = compose_llm_key("tenant-b", "purged-with-its-cron")
    body = {"assistant_id": "keyprobe", "schedule": "0 0 1 1 *", "input": user("tick")}
    async with httpx.AsyncClient(base_url=keyed.url, timeout=30) as client:
        created = await client.post("/runs/crons", json=body, headers={"x-api-key": KEY_B, LLM_KEY_HEADER: key_b})
        assert created.status_code == 200, created.text
        assert table_texts(keyed.database_url)["public.cron_secrets"] != ""
        purged = await client.post("/admin/tenants/tenant-b/purge", headers={"Authorization": f"Bearer {OPERATOR}"})
    assert purged.status_code == 200 and purged.json()["status"] == "done", purged.text
    assert table_texts(keyed.database_url)["public.cron_secrets"] == ""
