"""Agent discovery through the same routing that runs the graphs, against a real Agent Server process.

The server runs with service-JWT auth on a fresh Postgres database; the app runs as `cogni-app serve`
processes. LiteLLM only matters to the app's model allowlist here, so a small /model/info endpoint
stands in for it.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from cogni_app.executors import (
    AgentCatalogUnavailable,
    AgentDescriptor,
    ExecutorRouter,
    InProcProvider,
    LangGraphServerProvider,
)
from cogni_app.executors.catalog import catalog_descriptor
from cogni_app.service_auth import ServiceTokenMinter
from cogni_app.services import AgentsService, AgentsUnavailable
from testsupport import ManagedProcess, free_port, fresh_database, serve_asgi

pytestmark = [pytest.mark.integration]
SECRET = "agents-" + "s" * 40
AUDIENCE = "cogni-agent-server"
ADMIN = "op-" + "a" * 40
GRAPHS = ("chat", "poet", "research")


@pytest.fixture(scope="module")
def agent_server() -> Iterator[str]:
    with fresh_database("cogni_agents_srv") as db:
        port = free_port()
        server = ManagedProcess(
            [sys.executable, "-m", "cogni_server", "serve", "--config", "packages/graphs/langgraph.json",
             "--port", str(port)],
            env={"LANGGRAPH_DATABASE_URL": db, "COGNI_AUTH_MODE": "jwt", "COGNI_JWT_SECRET": SECRET,
                 "COGNI_JWT_AUDIENCE": AUDIENCE},
            name="agent-server",
        )  # fmt: skip
        try:
            server.wait_http(f"http://127.0.0.1:{port}/ok", timeout=60)
            yield f"http://127.0.0.1:{port}"
        finally:
            server.stop()


@pytest.fixture(scope="module")
def model_info() -> Iterator[str]:
    """LiteLLM's /model/info with one alias: all the app needs of LiteLLM to start."""

    async def info(_: Request) -> JSONResponse:
        entry = {"model_name": "gpt-4o-mini", "litellm_params": {"model": "openai/gpt-4o-mini"}, "model_info": {}}
        return JSONResponse({"data": [entry]})

    with serve_asgi(Starlette(routes=[Route("/model/info", info)]), lifespan="off") as url:
        yield url


@contextmanager
def running_app(litellm_url: str, **env: str) -> Iterator[httpx.Client]:
    """`cogni-app serve` on a fresh database with the given executor settings; yields a client for it."""
    with fresh_database("cogni_agents_app") as db:
        port = free_port()
        app = ManagedProcess(
            [sys.executable, "-m", "cogni_app", "serve", "--port", str(port)],
            env={"DATABASE_URL": db, "LITELLM_BASE_URL": litellm_url, "LITELLM_API_KEY": "sk-agents",
                 "COGNI_ADMIN_TOKEN": ADMIN, "COGNI_JWT_SECRET": SECRET, "COGNI_RECONCILE_INTERVAL_SECONDS": "0",
                 **env},
            name="cogni-app",
        )  # fmt: skip
        try:
            app.wait_http(f"http://127.0.0.1:{port}/healthz", timeout=60)
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30.0) as http:
                yield http
        finally:
            app.stop()


def api_key(http: httpx.Client) -> dict[str, str]:
    admin = {"Authorization": f"Bearer {ADMIN}"}
    account = http.post("/v1/admin/accounts", json={"name": "agents"}, headers=admin).json()
    key = http.post(f"/v1/admin/accounts/{account['id']}/api-keys", json={}, headers=admin).json()
    return {"Authorization": f"Bearer {key['apiKey']}"}


def catalog_body(name: str) -> dict[str, Any]:
    entry = catalog_descriptor(name)
    assert entry is not None
    return {
        "id": f"langgraph:{name}",
        "displayName": entry.display_name,
        "description": entry.description,
        "tools": list(entry.tool_ids),
    }


def server_provider(url: str, secret: str = SECRET, **kwargs: Any) -> LangGraphServerProvider:
    return LangGraphServerProvider(url, tokens=ServiceTokenMinter(secret, audience=AUDIENCE), **kwargs)


async def test_the_server_provider_lists_the_servers_graphs_with_the_catalogs_descriptions(agent_server: str) -> None:
    server = server_provider(agent_server)
    try:
        listed = await server.list_agents(billing_account_id="acct-agents")
    finally:
        await server.aclose()
    assert listed == [catalog_descriptor(name) for name in GRAPHS]
    assert listed[1].tool_ids == ("core__get_current_time",)


async def test_a_graph_the_catalog_does_not_know_is_described_by_its_assistant(agent_server: str) -> None:
    server = server_provider(agent_server, describe=lambda _: None)
    try:
        listed = await server.list_agents(billing_account_id="acct-agents")
    finally:
        await server.aclose()
    # system assistants carry their graph id as name, no description and no tool list
    assert listed == [AgentDescriptor(name=name, display_name=name, description="") for name in GRAPHS]


async def test_each_graph_is_listed_under_the_provider_its_route_runs_it_on(agent_server: str) -> None:
    server = server_provider(agent_server)
    routes = {"langgraph": "server", "langgraph:poet": "inproc", "remote": "server"}
    router = ExecutorRouter({"server": server, "inproc": InProcProvider()}, routes)
    try:
        listing = await router.list_agents(billing_account_id="acct-agents")
    finally:
        await server.aclose()
    assert listing.failures == []
    assert {a.graph_id: a.provider for a in listing.agents} == {
        "langgraph:chat": "server",
        "langgraph:poet": "inproc",  # the exact graph id route wins over its namespace, as for runs
        "langgraph:research": "server",
        "remote:chat": "server",
        "remote:poet": "server",
        "remote:research": "server",
    }
    assert all(router.route_of(a.graph_id) == a.provider for a in listing.agents)


async def test_a_server_that_refuses_the_app_is_an_error_naming_its_namespace_and_status(agent_server: str) -> None:
    forged = server_provider(agent_server, secret="w" * 40)
    router = ExecutorRouter({"server": forged, "inproc": InProcProvider()}, {"langgraph": "server", "local": "inproc"})
    try:
        with pytest.raises(AgentCatalogUnavailable, match=r"answered HTTP 40[13] to assistants\.search"):
            await forged.list_agents(billing_account_id="acct-agents")
        with pytest.raises(AgentsUnavailable) as refused:
            await AgentsService(router, default_graph_id="langgraph:chat").list_agents("acct-agents")
    finally:
        await forged.aclose()
    [failure] = refused.value.failures
    assert (failure.route, failure.provider) == ("langgraph", "server")
    assert [a.graph_id for a in refused.value.agents] == [f"local:{name}" for name in GRAPHS]  # what was listed


def test_get_agents_lists_the_servers_agents_for_an_api_key(agent_server: str, model_info: str) -> None:
    with running_app(model_info, COGNI_EXECUTOR="server", LANGGRAPH_SERVER_URL=agent_server) as http:
        response = http.get("/v1/agents", headers=api_key(http))
        assert response.status_code == 200, response.text
        assert response.json() == {
            "agents": [catalog_body(name) for name in GRAPHS],
            "defaultAgentId": "langgraph:chat",
        }
        assert http.get("/v1/agents").status_code == 401
        assert http.get("/v1/agents", headers={"Authorization": "Bearer nope"}).status_code == 401


def test_get_agents_with_the_server_down_is_503_naming_the_namespace(model_info: str) -> None:
    down = f"http://127.0.0.1:{free_port()}"  # nobody listens there
    env = {"COGNI_EXECUTOR": "server", "COGNI_EXECUTOR_MAP": "langgraph:poet=inproc", "LANGGRAPH_SERVER_URL": down}
    with running_app(model_info, **env) as http:
        response = http.get("/v1/agents", headers=api_key(http))
    assert response.status_code == 503, response.text
    body = response.json()
    assert body["error"] == "agents_unavailable"
    [unavailable] = body["unavailable"]
    assert unavailable["namespace"] == "langgraph" and unavailable["provider"] == "server"
    assert f"the Agent Server at {down} is unreachable" in unavailable["reason"]
    assert "'langgraph'" in body["message"] and down in body["message"]
    assert body["agents"] == [catalog_body("poet")]  # the in-process route still listed, never an empty 200
