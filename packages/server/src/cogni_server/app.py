"""The FastAPI application: routes, middleware and error mapping around one running server
(built by ``cogni_server.bootstrap`` in the lifespan), plus what langgraph.json's ``http`` block asks
for: a custom app in front (``api.custom_http``), CORS, configurable headers, disabled route families."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import APIRouter, FastAPI
from starlette.applications import Starlette

from cogni_server.api import (
    admin,
    agent_protocols,
    assistants,
    crons,
    errors,
    runs,
    store,
    system,
    thread_stream,
    thread_ws,
    threads,
)
from cogni_server.api.custom_http import ConfigurableHeaders, compose, cors_options, load_custom_app
from cogni_server.api.middleware import BodyLimit, LlmKeyOnlyOnRunCreation, Metrics
from cogni_server.api.openapi_security import install_openapi_security
from cogni_server.api.responses import JSONResponse
from cogni_server.api.tracing import instrument as instrument_tracing
from cogni_server.bootstrap import authenticator_for, running_server
from cogni_server.config import Settings
from cogni_server.graphs import GraphRegistry
from cogni_server.graphs.http_config import HttpConfig

META_PATHS = ("/info", "/metrics")  # with /docs and /openapi.json: what http.disable_meta removes


def api_routers(http: HttpConfig) -> list[APIRouter]:
    """The route families langgraph.json's ``disable_*`` flags leave on (a disabled one answers 404).

    As on the reference server, thread runs (``/threads/{id}/runs...``) and crons belong to the runs
    family; the thread-streaming protocol (``/threads/{id}/commands``, its streams) to threads.
    """
    families: list[tuple[bool, APIRouter]] = [  # the order requests are matched in: the run path first
        (http.disable_threads, threads.router),
        (http.disable_runs, runs.router),
        (http.disable_runs, crons.router),
        (http.disable_threads, thread_stream.router),
        (http.disable_threads, thread_ws.router),
        (http.disable_assistants, assistants.router),
        (http.disable_store, store.router),
    ]
    return [router for disabled, router in families if not disabled]


def create_app(settings: Settings, database_url: str) -> Starlette:
    """Build the app for an already resolved (embedded or checked) database URL."""
    registry = GraphRegistry.from_config(settings.config_path)
    authenticator = authenticator_for(settings, registry.project)
    protocols = agent_protocols.AgentProtocols(None)  # replaced below when the API is served
    http = registry.project.http
    custom = load_custom_app(registry.project.path, http)
    cors = cors_options(settings, http)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with running_server(settings, database_url, registry=registry, authenticator=authenticator) as ctx:
            app.state.cogni = ctx
            async with protocols.running():  # the MCP session manager's task group
                yield

    meta = not http.disable_meta
    app = FastAPI(
        title="Cogni Agent Server",
        description="The LangGraph Platform API on Postgres, for the official LangGraph clients.",
        version="0.1.0",
        lifespan=lifespan,
        default_response_class=JSONResponse,
        openapi_url="/openapi.json" if meta else None,
        docs_url="/docs" if meta else None,
        redoc_url="/redoc" if meta else None,
    )
    errors.install(app)
    if meta:
        app.include_router(system.router)
    else:
        app.include_router(_without(system.router, META_PATHS))
    if settings.serve_api:
        for router in api_routers(http):
            app.include_router(router)
        protocols = agent_protocols.mount(app, registry)  # MCP and A2A, unless langgraph.json's http turns them off
        app.include_router(admin.router)  # operator routes (COGNI_OPERATOR_TOKEN)
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(LlmKeyOnlyOnRunCreation)
    if http.configurable_headers.active:
        app.add_middleware(ConfigurableHeaders, selection=http.configurable_headers)
    app.add_middleware(Metrics)
    install_openapi_security(app, authenticator)  # langgraph.json auth.openapi
    instrument_tracing(app)  # the request span, continuing the caller's traceparent (tracing on only)
    return compose(app, custom, http, cors)


def _without(router: APIRouter, paths: tuple[str, ...]) -> APIRouter:
    kept = APIRouter(tags=list(router.tags or []))
    kept.routes.extend(route for route in router.routes if getattr(route, "path", None) not in paths)
    return kept
