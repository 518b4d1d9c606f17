"""langgraph.json's ``http`` block through a real server: a project's FastAPI app beside the API (its
routes first, its middleware and lifespan around the server), custom route auth, CORS from
``http.cors``, disabled route families answering 404, ``disable_meta``; and a project using a key
this server does not implement failing start-up with a message naming the key.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from langgraph_sdk import get_client
from langgraph_sdk.client import LangGraphClient

from testsupport import ManagedProcess, free_port, fresh_database

from .conftest import KEY_A, server_env, start_server
from .jobs_support import receiver

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "langgraph_json"
GRAPH = f"{FIXTURES / 'factory_graphs.py'}:compiled"
ALLOWED_ORIGIN = "https://app.example.com"


def _project(directory: Path, **blocks: Any) -> Path:
    path = directory / "langgraph.json"
    path.write_text(json.dumps({"dependencies": ["."], "graphs": {"agent": GRAPH}, **blocks}))
    return path


@pytest.fixture(scope="module")
def database() -> Iterator[str]:
    with fresh_database("cogni_server_http") as db:
        yield db


@pytest.fixture(scope="module")
def custom_server(database: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    project = _project(
        tmp_path_factory.mktemp("custom"),
        http={
            "app": f"{FIXTURES / 'webapp.py'}:app",
            "enable_custom_route_auth": True,
            "disable_store": True,
            "cors": {"allow_origins": [ALLOWED_ORIGIN], "allow_methods": ["GET", "POST"], "allow_headers": ["*"]},
        },
    )
    port = free_port()
    proc: ManagedProcess = start_server(database, port, project=project, name="custom-routes-server")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.stop()


@pytest.fixture
async def http(custom_server: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=custom_server, headers={"x-api-key": KEY_A}) as c:
        yield c


@pytest.fixture
async def client(custom_server: str) -> AsyncIterator[LangGraphClient]:
    c = get_client(url=custom_server, api_key=KEY_A)
    try:
        yield c
    finally:
        await c.aclose()


async def test_a_custom_route_answers_beside_the_api(http: httpx.AsyncClient, client: LangGraphClient) -> None:
    hello = await http.get("/hello")
    assert hello.status_code == 200
    assert hello.json() == {"Hello": "World", "lifespan_ran": True}  # the custom app's lifespan ran too
    thread = await client.threads.create()  # the API still answers through the official SDK
    result = await client.runs.wait(thread["thread_id"], "agent", input={})
    assert isinstance(result, dict) and result["seen"] == ["compiled"]


async def test_custom_routes_take_precedence_over_built_in_ones(http: httpx.AsyncClient) -> None:
    info = await http.get("/info")
    assert info.json() == {"custom": True}  # the server's own /info is shadowed by the project's


async def test_the_custom_apps_middleware_wraps_the_api_too(http: httpx.AsyncClient) -> None:
    response = await http.post("/assistants/search", json={"limit": 1})
    assert response.status_code == 200
    assert response.headers["x-custom-middleware"] == "seen"
    assert (await http.get("/ok")).headers["x-custom-middleware"] == "seen"


async def test_custom_routes_go_through_the_servers_auth(custom_server: str, http: httpx.AsyncClient) -> None:
    async with httpx.AsyncClient(base_url=custom_server) as anonymous:
        refused = await anonymous.get("/hello")
        assert refused.status_code == 401 and refused.json()["detail"]
        wrong = await anonymous.get("/hello", headers={"x-api-key": "not-a-key"})
        assert wrong.status_code == 401
        assert (await anonymous.get("/ok")).status_code == 200  # the server's own open routes stay open
    assert (await http.get("/whoami")).json() == {"identity": "tenant-a"}


async def test_a_disabled_family_answers_404(http: httpx.AsyncClient, client: LangGraphClient) -> None:
    with pytest.raises(httpx.HTTPStatusError) as refused:
        await client.store.put_item(["notes"], "k", {"v": 1})
    assert refused.value.response.status_code == 404
    assert (await http.post("/store/items/search", json={})).status_code == 404
    assert (await http.post("/threads/search", json={})).status_code == 200  # the others stay


async def test_cors_preflight_follows_http_cors(custom_server: str) -> None:
    preflight = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "x-api-key,content-type"}
    async with httpx.AsyncClient(base_url=custom_server) as browser:
        allowed = await browser.options("/threads/search", headers={"Origin": ALLOWED_ORIGIN, **preflight})
        assert allowed.status_code == 200
        assert allowed.headers["access-control-allow-origin"] == ALLOWED_ORIGIN
        assert "POST" in allowed.headers["access-control-allow-methods"]
        custom = await browser.options("/hello", headers={"Origin": ALLOWED_ORIGIN, **preflight})
        assert custom.status_code == 200  # custom routes get the same CORS rules
        denied = await browser.options("/threads/search", headers={"Origin": "https://evil.example", **preflight})
        assert denied.status_code == 400 and "access-control-allow-origin" not in denied.headers
        wrong_method = await browser.options(
            "/threads/search",
            headers={"Origin": ALLOWED_ORIGIN, **preflight, "Access-Control-Request-Method": "DELETE"},
        )
        assert wrong_method.status_code == 400


def test_disabled_meta_and_api_families_and_build_only_keys(tmp_path: Path) -> None:
    """On a database of its own: the module's custom server (webhooks on) would otherwise share the
    webhook outbox and could claim this run's delivery first (seen under load)."""
    project = _project(
        tmp_path,
        python_version="3.11",
        dockerfile_lines=["RUN true"],
        http={"disable_meta": True, "disable_assistants": True, "disable_threads": True, "disable_webhooks": True},
    )
    port = free_port()
    with fresh_database("cogni_server_disabled") as database, receiver() as hooks:
        proc = start_server(
            database,
            port,
            project=project,
            name="disabled-families-server",
            COGNI_WEBHOOK_ALLOWED_DOMAINS="127.0.0.1",
            COGNI_WEBHOOK_POLL_SECONDS="0.1",
        )
        try:
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"x-api-key": KEY_A}) as c:
                assert c.get("/ok").status_code == 200
                for path in ("/info", "/metrics", "/openapi.json", "/docs"):
                    assert c.get(path).status_code == 404, path
                assert c.post("/assistants/search", json={}).status_code == 404
                assert c.post("/threads", json={}).status_code == 404
                assert c.post("/threads/search", json={}).status_code == 404
                # runs stay: a stateless run with a webhook runs, and its webhook is never sent
                body = {"assistant_id": "agent", "input": {}, "webhook": hooks.url("/hook"), "on_completion": "keep"}
                run = c.post("/runs", json=body).json()
                outcome = _webhook_outcome(c, run)
                assert outcome["status"] == "refused"
                assert outcome["error"] == "webhooks are disabled (langgraph.json http.disable_webhooks)"
                assert hooks.on("/hook") == []
            log = proc.output()
            assert "'python_version' is ignored by this server" in log
            assert "'dockerfile_lines' is ignored by this server" in log
        finally:
            proc.stop()


def _webhook_outcome(c: httpx.Client, run: dict[str, Any]) -> dict[str, Any]:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        got = c.get(f"/threads/{run['thread_id']}/runs/{run['run_id']}").json()  # runs family, not threads
        if outcome := got["metadata"].get("webhook_delivery"):
            assert got["status"] == "success"
            return dict(outcome)
        time.sleep(0.1)
    raise AssertionError(f"no webhook outcome on run {run['run_id']}")


def _serve(database: str, project: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **server_env(database)}
    return subprocess.run(
        [sys.executable, "-m", "cogni_server", "serve", "--config", str(project), "--port", str(free_port())],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_an_unknown_key_stops_start_up_naming_it(database: str, tmp_path: Path) -> None:
    """(Every other refused key is checked in-process in ``test_server_infra_langgraph_json``.)"""
    result = _serve(database, _project(tmp_path, grpahs_extra={}))
    assert result.returncode == 2, result.stderr[-2000:]
    assert "error: langgraph.json: unknown key(s) ['grpahs_extra']" in result.stderr
    assert "Traceback" not in result.stderr
