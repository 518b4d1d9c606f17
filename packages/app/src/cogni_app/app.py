"""The FastAPI app of `cogni-app serve`: builds the runtime in its lifespan, mounts the routes."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import structlog
from fastapi import FastAPI
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.responses import JSONResponse, Response

from cogni_app.api import account, admin, chat
from cogni_app.api.errors import install_error_handlers
from cogni_app.api.runtime import AppRuntime
from cogni_app.billing import Accounts, Ledger
from cogni_app.config import AppSettings
from cogni_app.db import AppDatabase, migrate
from cogni_app.executors import ExecutorRouter, GraphExecutorPort, InProcProvider, LangGraphServerProvider
from cogni_app.models import ModelAllowlist
from cogni_app.reconcile import LiteLLMSpendLogsApiSource, Reconciler, SinkTableSource, SpendLogSource
from cogni_app.relay import Relay
from cogni_app.service_auth import ServiceTokenMinter

log = structlog.get_logger(__name__)


def build_executor(settings: AppSettings) -> tuple[ExecutorRouter, list[LangGraphServerProvider]]:
    """Only the providers some route names are built (the in-process one imports the graphs)."""
    routes = settings.executor_routes()
    providers: dict[str, GraphExecutorPort] = {}
    closers: list[LangGraphServerProvider] = []
    if "inproc" in routes.values():
        providers["inproc"] = InProcProvider()
    if "server" in routes.values():
        assert settings.cogni_jwt_secret is not None  # enforced by AppSettings
        tokens = ServiceTokenMinter(
            settings.cogni_jwt_secret.get_secret_value(),
            audience=settings.cogni_jwt_audience,
            ttl_seconds=settings.cogni_jwt_ttl_seconds,
        )
        server = LangGraphServerProvider(settings.langgraph_server_url, tokens=tokens)
        providers["server"] = server
        closers.append(server)
    return ExecutorRouter(providers, routes), closers


def build_spend_source(settings: AppSettings) -> SpendLogSource:
    """The sink table when configured (this repo's LiteLLM setup), else LiteLLM's /spend/logs API."""
    if settings.cogni_spend_sink_database_url:
        return SinkTableSource(settings.cogni_spend_sink_database_url)
    return LiteLLMSpendLogsApiSource(settings.litellm_base_url, settings.litellm_api_key.get_secret_value())


def create_app(settings: AppSettings | None = None, *, run_migrations: bool = True) -> FastAPI:
    settings = settings or AppSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if run_migrations:
            await migrate(settings.database_url)
        db = AppDatabase(settings.database_url)
        await db.open()
        models = ModelAllowlist(
            settings.litellm_base_url,
            settings.litellm_api_key.get_secret_value(),
            refresh_seconds=settings.cogni_models_refresh_seconds,
        )
        executor, closers = build_executor(settings)
        sweeper: asyncio.Task[None] | None = None
        relay: Relay | None = None
        try:
            await models.start()
            ledger = Ledger(db, markup=settings.user_price_markup_factor, is_free_model=models.is_free)
            reconciler = Reconciler(ledger, build_spend_source(settings))
            relay = Relay(
                ledger=ledger, reconciler=reconciler, reconcile_delay_seconds=settings.cogni_reconcile_delay_seconds
            )
            app.state.runtime = AppRuntime(
                settings=settings,
                accounts=Accounts(db),
                ledger=ledger,
                models=models,
                executor=executor,
                relay=relay,
                reconciler=reconciler,
            )
            if settings.cogni_reconcile_interval_seconds > 0:
                sweeper = asyncio.create_task(reconciler.run_periodically(settings.cogni_reconcile_interval_seconds))
            log.info("app_started", executor_routes=settings.executor_routes())
            yield
        finally:
            app.state.runtime = None
            if relay is not None:
                await relay.aclose(drain_seconds=30.0)  # runs in flight finish and bill before we go
            if sweeper is not None:
                sweeper.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await sweeper
            for closer in closers:
                await closer.aclose()
            await models.stop()
            await db.close()

    app = FastAPI(title="cogni-app", version="0.1.0", lifespan=lifespan)
    app.state.runtime = None
    install_error_handlers(app)
    app.include_router(chat.router)
    app.include_router(account.router)
    app.include_router(admin.router)

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> JSONResponse:
        ready = app.state.runtime is not None
        return JSONResponse({"ok": ready}, status_code=200 if ready else 503)

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return app
