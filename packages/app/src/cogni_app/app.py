"""The FastAPI app of `cogni-app serve`: opens the use cases in its lifespan, mounts the routes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.responses import JSONResponse, Response

from cogni_app.api import account, admin, agents, chat
from cogni_app.api.body_limit import BodyLimit
from cogni_app.api.console import mount_console
from cogni_app.api.errors import install_error_handlers
from cogni_app.api.runtime import AppRuntime
from cogni_app.api.tracing import instrument as instrument_tracing
from cogni_app.config import AppSettings
from cogni_app.wiring import open_services


def create_app(settings: AppSettings | None = None, *, run_migrations: bool = True) -> FastAPI:
    settings = settings or AppSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with open_services(settings, run_migrations=run_migrations) as services:
            app.state.runtime = AppRuntime(settings=settings, services=services)
            try:
                yield
            finally:
                app.state.runtime = None  # /healthz says 503 while the runs in flight drain

    app = FastAPI(title="cogni-app", version="0.1.0", lifespan=lifespan)
    app.state.runtime = None
    install_error_handlers(app)
    app.add_middleware(BodyLimit, max_bytes=settings.cogni_max_request_body_bytes)
    app.include_router(chat.router)
    app.include_router(agents.router)
    app.include_router(account.router)
    app.include_router(admin.router)
    mount_console(app)
    instrument_tracing(app)  # the request span, continuing the client's traceparent (tracing on only)

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> JSONResponse:
        ready = app.state.runtime is not None
        return JSONResponse({"ok": ready}, status_code=200 if ready else 503)

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return app
