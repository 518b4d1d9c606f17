"""The FastAPI application factory and its lifespan: database, checkpointer, graphs, broker, workers."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from cogni_server.api import assistants, errors, runs, system, threads, unsupported
from cogni_server.api.common import AppState, JSONResponse
from cogni_server.api.middleware import BodyLimit, Metrics
from cogni_server.auth import build_authenticator
from cogni_server.config import Settings
from cogni_server.graphs import GraphRegistry
from cogni_server.runs.executor import Executor
from cogni_server.runs.worker import WorkerPool
from cogni_server.storage import assistants as assistant_repo
from cogni_server.storage.checkpointer import PooledPostgresSaver
from cogni_server.storage.migrations import migrate
from cogni_server.storage.pool import open_pool
from cogni_server.streaming import build_broker

log = logging.getLogger("cogni_server")


def create_app(settings: Settings, database_url: str) -> FastAPI:
    """Build the app for an already resolved (embedded or checked) database URL."""
    authenticator = build_authenticator(
        settings.auth_mode,
        api_keys=settings.api_key_map() or None,
        jwt_secret=settings.jwt_secret,
        jwt_public_key=settings.jwt_public_key,
        jwt_algorithm=settings.jwt_algorithm,
        jwt_audience=settings.jwt_audience,
        jwt_issuer=settings.jwt_issuer,
    )
    registry = GraphRegistry.from_config(settings.config_path)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        applied = await migrate(database_url)
        if applied:
            log.info("applied migrations: %s", applied)
        pool = await open_pool(
            database_url,
            min_size=settings.pool_min_size,
            max_size=settings.pool_max_size,
            connect_timeout=settings.database_connect_timeout,
        )
        broker = build_broker(settings.redis_url or None, key_prefix=settings.redis_key_prefix)
        workers: WorkerPool | None = None
        try:
            checkpointer = PooledPostgresSaver(pool)
            await checkpointer.setup()
            system_assistants: dict[str, dict[str, object]] = {}
            async with pool.connection() as conn:
                for graph_id in registry.graph_ids():
                    row = await assistant_repo.upsert_system(conn, graph_id)
                    system_assistants[graph_id] = system_assistants[row["assistant_id"]] = row
            executor = Executor(
                pool=pool,
                checkpointer=checkpointer,
                registry=registry,
                broker=broker,
                run_timeout=settings.run_timeout_seconds,
            )
            workers = WorkerPool(
                pool=pool, executor=executor, broker=broker, settings=settings, enabled=settings.run_workers
            )
            app.state.cogni = AppState(
                settings=settings,
                pool=pool,
                checkpointer=checkpointer,
                registry=registry,
                broker=broker,
                executor=executor,
                workers=workers,
                authenticator=authenticator,
                system_assistants=system_assistants,
            )
            workers.start()
            log.info(
                "cogni-server ready: graphs=%s workers=%s auth=%s",
                registry.graph_ids(),
                settings.n_jobs_per_worker if settings.run_workers else 0,
                settings.auth_mode,
            )
            yield
        finally:
            if workers is not None:
                await workers.drain(settings.drain_seconds)
            await broker.close()
            await pool.close()

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
        app.include_router(unsupported.router)
        app.include_router(assistants.router)
        app.include_router(threads.router)
        app.include_router(runs.router)
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
