"""Service JWT auth wired from the environment: audience and expiry checked, ``sub`` is the tenant."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Iterator

import httpx
import jwt
import pytest
from langgraph_sdk import get_client
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

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


async def test_thread_streaming_with_tokens(jwt_server: str) -> None:
    """The thread-streaming protocol under JWT: the header over HTTP, an ``access_token`` cookie on the
    WebSocket (all a browser can send), from an allowed origin only; another tenant's thread is 4404."""
    alice = get_client(url=jwt_server, api_key=None, headers={"Authorization": f"Bearer {token('alice')}"})
    try:
        async with alice.threads.stream(assistant_id="echo") as thread:
            await thread.run.start(input={"messages": [{"role": "user", "content": "hi"}]})
            assert (await thread.output)["count"] == 1
            tid = thread.thread_id
    finally:
        await alice.aclose()
    url = jwt_server.replace("http://", "ws://") + f"/threads/{tid}/stream/events"

    async def closed_with(headers: dict[str, str]) -> int | None:
        async with connect(url, additional_headers=headers) as ws:
            with contextlib.suppress(ConnectionClosed):  # a refused socket closes right after the upgrade
                subscribe = {"id": 1, "method": "subscription.subscribe", "params": {"channels": ["lifecycle"]}}
                await ws.send(json.dumps(subscribe))
                while True:
                    message = json.loads(await asyncio.wait_for(ws.recv(), 10))
                    if message.get("method") == "lifecycle" and message["params"]["data"]["event"] == "completed":
                        return None  # served
            return ws.close_code

    browser = {"origin": "http://app.example"}
    assert await closed_with({**browser, "cookie": f"access_token={token('alice')}"}) is None
    assert await closed_with({**browser, "cookie": f"access_token={token('bob')}"}) == 4404
    assert await closed_with({**browser, "cookie": "access_token=not-a-jwt"}) == 4401
    assert await closed_with({"origin": "http://evil.example", "cookie": f"access_token={token('alice')}"}) == 4403
