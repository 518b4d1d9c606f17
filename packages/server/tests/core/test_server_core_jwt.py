"""Service JWT auth wired from the environment: audience and expiry checked, ``sub`` is the tenant."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import jwt
import pytest
from langgraph_sdk import get_client

from testsupport import ManagedProcess, free_port, fresh_database

from .conftest import start_server

SECRET = "server-core-test-secret-of-at-least-32-bytes!!"
AUDIENCE = "cogni-agent-server"


def token(sub: str, *, audience: str = AUDIENCE, ttl: int = 300) -> str:
    now = int(time.time())
    return jwt.encode({"sub": sub, "aud": audience, "iat": now, "exp": now + ttl}, SECRET, algorithm="HS256")


@pytest.fixture(scope="module")
def jwt_server() -> Iterator[str]:
    with fresh_database("cogni_server_core_jwt") as db:
        port = free_port()
        proc: ManagedProcess = start_server(
            db,
            port,
            name="jwt-server",
            COGNI_AUTH_MODE="jwt",
            COGNI_JWT_SECRET=SECRET,
            COGNI_JWT_AUDIENCE=AUDIENCE,
            COGNI_CORS_ALLOW_ORIGINS="http://app.example",
        )
        try:
            yield f"http://127.0.0.1:{port}"
        finally:
            proc.stop()


async def test_jwt_tenants_are_isolated(jwt_server: str) -> None:
    alice = get_client(url=jwt_server, api_key=None, headers={"Authorization": f"Bearer {token('alice')}"})
    bob = get_client(url=jwt_server, api_key=None, headers={"Authorization": f"Bearer {token('bob')}"})
    try:
        tid = (await alice.threads.create())["thread_id"]
        out = await alice.runs.wait(tid, "echo", input={"messages": []})
        assert out["count"] == 1
        with pytest.raises(httpx.HTTPStatusError) as info:
            await bob.threads.get(tid)
        assert info.value.response.status_code == 404
    finally:
        await alice.aclose()
        await bob.aclose()


async def test_bad_tokens_are_401(jwt_server: str) -> None:
    async with httpx.AsyncClient(base_url=jwt_server) as http:
        assert (await http.post("/threads", json={})).status_code == 401
        for bad in (token("x", audience="someone-else"), token("x", ttl=-60), "not-a-jwt"):
            r = await http.post("/threads", json={}, headers={"Authorization": f"Bearer {bad}"})
            assert r.status_code == 401, bad
            assert r.json()["detail"]
        ok = await http.post("/threads", json={}, headers={"Authorization": f"Bearer {token('carol')}"})
        assert ok.status_code == 200


async def test_cors_for_configured_origin(jwt_server: str) -> None:
    async with httpx.AsyncClient(base_url=jwt_server) as http:
        pre = await http.options(
            "/threads",
            headers={
                "Origin": "http://app.example",
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization,content-type",
            },
        )
        assert pre.status_code == 200
        assert pre.headers["access-control-allow-origin"] == "http://app.example"
        r = await http.post(
            "/threads", json={}, headers={"Origin": "http://app.example", "Authorization": f"Bearer {token('d')}"}
        )
        assert "Content-Location" in r.headers.get("access-control-expose-headers", "")
