"""The FastAPI application: routes, middleware and error mapping around one running server
(built by ``cogni_server.bootstrap`` in the lifespan)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from cogni_server.api import admin, assistants, crons, errors, runs, store, system, thread_stream, thread_ws, threads
from cogni_server.api.middleware import BodyLimit, Metrics
from cogni_server.api.responses import JSONResponse
from cogni_server.bootstrap import authenticator_for, running_server
from cogni_server.config import Settings
from cogni_server.graphs import GraphRegistry


def create_app(settings: Settings, database_url: str) -> FastAPI:
    """Build the app for an already resolved (embedded or checked) database URL."""
    authenticator = authenticator_for(settings)
    registry = GraphRegistry.from_config(settings.config_path)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with running_server(settings, database_url, registry=registry, authenticator=authenticator) as ctx:
            app.state.cogni = ctx
            yield

    app = FastAPI(
        title="Cogni Agent Server",
        description="The LangGraph Platform API on Postgres, for the official LangGraph clients.",
        version="0.1.0",
        lifespan=lifespan,
        default_response_class=JSONResponse,
    )
    errors.install(app)
    app.include_router(system.router)
    if settings.serve_api:
        app.include_router(assistants.router)
        app.include_router(threads.router)
        app.include_router(crons.router)
        app.include_router(runs.router)
        app.include_router(store.router)
        app.include_router(thread_stream.router)  # thread-streaming protocol: commands + SSE
        app.include_router(thread_ws.router)  # ... and its WebSocket
        app.include_router(admin.router)  # operator routes (COGNI_OPERATOR_TOKEN)
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    if settings.cors_allow_origins:  # browsers (the JS useStream hook) on another origin
        app.add_middleware(
            CORSMiddleware,
            allow_origins=[o.strip() for o in settings.cors_allow_origins.split(",") if o.strip()],
            allow_methods=["*"],
            allow_headers=["*"],
            allow_credentials=True,
            expose_headers=["Content-Location", "Location", "X-Pagination-Total", "X-Pagination-Next"],
        )
    app.add_middleware(Metrics)
    return app
