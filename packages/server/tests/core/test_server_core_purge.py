"""Tenant purge: every row of one tenant in every table the server owns goes (checked table by table
against the database catalogue), with its Redis keys; the other tenant keeps everything; the route
answers only the operator; the CLI does the same; a purge is idempotent."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import psycopg
import pytest
from langgraph_sdk import get_client

from testsupport import ManagedProcess, free_port, fresh_database

from .conftest import KEY_A, KEY_B, Server, server_env, start_server
from .purge_support import (
    OPERATOR_TOKEN,
    PURGE_PROJECT,
    Known,
    redis_keys_of,
    seed_tenant,
    store_label,
    tenant_rows,
)

REDIS_URL = os.environ.get("COGNI_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


@dataclass
class PurgeServer:
    url: str
    database_url: str
    env: dict[str, str]
    process: ManagedProcess


@pytest.fixture(scope="module")
def purge_server() -> Iterator[PurgeServer]:
    extra = {
        "REDIS_URL": REDIS_URL,
        "COGNI_REDIS_KEY_PREFIX": f"purge-{uuid.uuid4().hex[:8]}",
        "COGNI_OPERATOR_TOKEN": OPERATOR_TOKEN,
        "COGNI_WEBHOOK_ALLOWED_DOMAINS": "127.0.0.1",
    }
    with fresh_database("cogni_purge") as db:
        port = free_port()
        proc = start_server(db, port, project=PURGE_PROJECT, name="purge", **extra)
        try:
            yield PurgeServer(f"http://127.0.0.1:{port}", db, server_env(db, **extra), proc)
        finally:
            proc.stop()


async def _purge(server_url: str, tenant: str, token: str | None = OPERATOR_TOKEN, **headers: str) -> httpx.Response:
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    async with httpx.AsyncClient(timeout=120) as http:
        return await http.post(f"{server_url}/admin/tenants/{tenant}/purge", headers=headers)


async def test_purge_deletes_every_row_and_key_of_one_tenant_only(purge_server: PurgeServer) -> None:
    hook = f"http://127.0.0.1:{free_port()}/hook"  # nobody listens: the outbox row stays
    a = get_client(url=purge_server.url, api_key=KEY_A)
    b = get_client(url=purge_server.url, api_key=KEY_B)
    try:
        seeded_a = await seed_tenant(a, "a", hook)
        seeded_b = await seed_tenant(b, "b", hook)
    finally:
        await a.aclose()
    with psycopg.connect(purge_server.database_url, autocommit=True) as conn:
        known_a, known_b = Known("tenant-a").refresh(conn), Known("tenant-b").refresh(conn)
        before_a, before_b = tenant_rows(conn, known_a), tenant_rows(conn, known_b)
    for table, n in before_a.items():
        assert n > 0 or table == "store_vectors", f"the seed left {table} empty for tenant-a: {before_a}"
    prefix = purge_server.env["COGNI_REDIS_KEY_PREFIX"]
    keys_b = redis_keys_of(REDIS_URL, prefix, known_b)
    assert redis_keys_of(REDIS_URL, prefix, known_a), "tenant-a's runs left no Redis keys to purge"
    assert any(":tl:" in k for k in keys_b) and any(":run:" in k for k in keys_b)

    # only the operator: no token, a tenant's key (either way it is sent), a wrong token
    assert (await _purge(purge_server.url, "tenant-a", token=None)).status_code == 401
    assert (await _purge(purge_server.url, "tenant-a", token=None, **{"x-api-key": KEY_A})).status_code == 401
    assert (await _purge(purge_server.url, "tenant-a", token=KEY_A)).status_code == 401
    assert (await _purge(purge_server.url, "tenant-a", token="not-the-token")).status_code == 401

    response = await _purge(purge_server.url, "tenant-a")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["tenant"] == "tenant-a" and body["status"] == "done"
    assert {t: body["counts"][t] for t in before_a} == before_a  # every row, counted per table

    with psycopg.connect(purge_server.database_url, autocommit=True) as conn:
        after_a, after_b = tenant_rows(conn, known_a), tenant_rows(conn, known_b)
    assert after_a == dict.fromkeys(before_a, 0), f"rows of the purged tenant remain: {after_a}"
    assert after_b == before_b, "the other tenant's rows changed"
    assert redis_keys_of(REDIS_URL, prefix, known_a) == []
    assert redis_keys_of(REDIS_URL, prefix, known_b) == keys_b

    # what the tenants see: a's things are gone, b's are all there
    a = get_client(url=purge_server.url, api_key=KEY_A)
    try:
        with pytest.raises(httpx.HTTPStatusError) as gone:
            await a.threads.get(seeded_a["thread"]["thread_id"])
        assert gone.value.response.status_code == 404
        assert await a.store.search_items(["profile"]) == {"items": []}
        assert await a.crons.search() == []
        # the fence is down once the purge is done: the tenant can start afresh
        assert (await a.threads.create())["thread_id"]
    finally:
        await a.aclose()
    try:
        assert (await b.threads.get(seeded_b["thread"]["thread_id"]))["metadata"]["tag"] == "b"
        assert (await b.store.get_item(["profile"], "name"))["value"] == {"name": "b"}
        assert len(await b.crons.search()) == 2
        await b.runs.wait(seeded_b["thread"]["thread_id"], seeded_b["assistant"]["assistant_id"], input={})
    finally:
        await b.aclose()

    # idempotent: again, the same answer (the counts add up over every call; nothing was left)
    again = await _purge(purge_server.url, "tenant-a")
    assert again.status_code == 200 and again.json()["status"] == "done"
    assert {t: again.json()["counts"][t] for t in before_a} == {t: before_a[t] + (t == "threads") for t in before_a}
    async with httpx.AsyncClient() as http:
        status = await http.get(
            f"{purge_server.url}/admin/tenants/tenant-a/purge", headers={"Authorization": f"Bearer {OPERATOR_TOKEN}"}
        )
    assert status.status_code == 200 and status.json() == again.json()


def test_cli_purges_a_tenant_and_prints_the_counts(purge_server: PurgeServer) -> None:
    tenant = f"cli-{uuid.uuid4().hex[:6]}"
    key = f"key-{tenant}"
    with psycopg.connect(purge_server.database_url, autocommit=True) as conn:
        thread = uuid.uuid4()
        conn.execute("INSERT INTO threads (thread_id, owner) VALUES (%s, %s)", (thread, tenant))
        conn.execute("INSERT INTO store (prefix, key, value) VALUES (%s, 'k', '{}')", (store_label(tenant) + ".notes",))
        known = Known(tenant).refresh(conn)
        before = tenant_rows(conn, known)
    assert before["threads"] == 1 and before["store"] == 1
    env = {**os.environ, **purge_server.env, "COGNI_API_KEYS": f"{key}:{tenant}"}
    result = subprocess.run(
        [sys.executable, "-m", "cogni_server", "purge", "--tenant", tenant, "--config", str(PURGE_PROJECT)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    printed = json.loads(result.stdout.strip().splitlines()[-1])
    assert printed["tenant"] == tenant and printed["status"] == "done"
    assert {t: printed["counts"][t] for t in before} == before
    with psycopg.connect(purge_server.database_url, autocommit=True) as conn:
        assert tenant_rows(conn, known) == dict.fromkeys(before, 0)

    missing = subprocess.run(
        [sys.executable, "-m", "cogni_server", "purge", "--config", str(PURGE_PROJECT)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert missing.returncode != 0 and "--tenant" in missing.stderr


def test_operator_routes_do_not_exist_without_a_token(server: Server) -> None:
    response = httpx.post(
        f"{server.url}/admin/tenants/tenant-a/purge", headers={"Authorization": "Bearer anything", "x-api-key": KEY_A}
    )
    assert response.status_code == 404


def test_a_tenant_credential_cannot_be_the_operator_token() -> None:
    with fresh_database("cogni_purge_token") as db:
        result = subprocess.run(
            [sys.executable, "-m", "cogni_server", "serve", "--config", str(PURGE_PROJECT), "--port", str(free_port())],
            env={**os.environ, **server_env(db, COGNI_OPERATOR_TOKEN=KEY_B)},
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 2
    assert "COGNI_OPERATOR_TOKEN must not be a tenant credential" in result.stderr
