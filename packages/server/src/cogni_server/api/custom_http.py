"""The ``http`` block of langgraph.json at the HTTP edge: a project's own Starlette/FastAPI app beside
the API, CORS, configurable headers and authentication of custom routes.

Precedence is the reference's: the custom app is the outer application and the server's API is
mounted after the custom app's own routes, so a custom route with the same path and method as a
built-in one answers instead of it; every other request falls through to the API. The custom app's
middleware therefore wraps the API as well (``middleware_order: "middleware_first"``), and its
lifespan runs inside the server's (the server is up before the custom app starts).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from starlette.applications import Starlette
from starlette.middleware.cors import CORSMiddleware
from starlette.routing import BaseRoute, Mount
from starlette.types import ASGIApp, Receive, Scope, Send

from cogni_server.api.context import principal
from cogni_server.api.responses import JSONResponse
from cogni_server.config import Settings
from cogni_server.graphs import GraphLoadError
from cogni_server.graphs.http_config import HeaderFilter, HttpConfig
from cogni_server.graphs.loader import load_object
from cogni_server.services.request_headers import selected_headers

EXPOSED_HEADERS = ["Content-Location", "Location", "X-Pagination-Total", "X-Pagination-Next"]


class ConfigurableHeaders:
    """Pure ASGI middleware: the headers ``http.configurable_headers`` selects become the current
    request's (``services.request_headers``), so a run created by this request carries them."""

    def __init__(self, app: ASGIApp, selection: HeaderFilter) -> None:
        self.app = app
        self.selection = selection

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope.get("headers", ())}
        with selected_headers(self.selection.pick(headers)):
            await self.app(scope, receive, send)


def cors_options(settings: Settings, http: HttpConfig) -> dict[str, Any] | None:
    """CORSMiddleware arguments: ``http.cors`` (Starlette's defaults for what it leaves out, as on the
    reference server) or ``COGNI_CORS_ALLOW_ORIGINS``; both at once is a start-up error."""
    if http.cors is not None:
        if settings.cors_allow_origins:
            raise GraphLoadError(
                "langgraph.json: http.cors and COGNI_CORS_ALLOW_ORIGINS are both set; keep one of them"
            )
        return dict(http.cors)
    if settings.cors_allow_origins:  # browsers (the JS useStream hook) on another origin
        return {
            "allow_origins": [o.strip() for o in settings.cors_allow_origins.split(",") if o.strip()],
            "allow_methods": ["*"],
            "allow_headers": ["*"],
            "allow_credentials": True,
            "expose_headers": EXPOSED_HEADERS,
        }
    return None


def load_custom_app(config_path: Path, http: HttpConfig) -> Starlette | None:
    """The project's ``http.app``; anything but a Starlette (or FastAPI) application is an error."""
    if http.app is None:
        return None
    app = load_object(config_path, "http.app", http.app)
    if not isinstance(app, Starlette):
        raise GraphLoadError(
            f"http.app: {http.app!r} is a {type(app).__name__}, expected a Starlette or FastAPI application"
        )
    return app


@dataclass(frozen=True)
class RouteUser:
    """``request.user`` in a custom route when ``enable_custom_route_auth`` is on."""

    identity: str
    display_name: str
    is_authenticated: bool = True
    permissions: list[str] = field(default_factory=list)


def _authenticated(route_app: ASGIApp) -> ASGIApp:
    """Wrap one custom route: the caller must pass the server's authentication first."""

    async def guarded(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            try:
                who = await principal(Request(scope, receive))
            except HTTPException as exc:
                if scope["type"] == "websocket":
                    await send({"type": "websocket.close", "code": 1008, "reason": str(exc.detail)})
                    return
                await JSONResponse({"detail": exc.detail}, status_code=exc.status_code)(scope, receive, send)
                return
            scope["user"] = RouteUser(identity=who.tenant, display_name=who.tenant)
            scope.setdefault("auth", [])
        await route_app(scope, receive, send)

    return guarded


def _guard_routes(routes: list[BaseRoute]) -> None:
    for route in routes:
        inner = getattr(route, "app", None)
        if inner is not None:
            route.app = _authenticated(inner)  # type: ignore[attr-defined]


def compose(core: FastAPI, custom: Starlette | None, http: HttpConfig, cors: dict[str, Any] | None) -> Starlette:
    """The application uvicorn serves: ``core`` alone, or ``custom`` with ``core`` behind its routes."""
    if custom is None:
        if cors is not None:
            core.add_middleware(CORSMiddleware, **cors)
        return core
    if http.enable_custom_route_auth:
        _guard_routes(custom.router.routes)
    custom.router.routes.append(Mount("", app=core))  # after the custom routes: they take precedence
    custom_lifespan: Callable[[Any], Any] = custom.router.lifespan_context
    core_lifespan: Callable[[Any], Any] = core.router.lifespan_context

    @asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[Any]:
        async with core_lifespan(core):
            app.state.cogni = core.state.cogni  # for the drain on SIGTERM (cli.DrainingServer)
            async with custom_lifespan(app) as state:
                yield state

    custom.router.lifespan_context = lifespan
    if cors is not None:
        custom.add_middleware(CORSMiddleware, **cors)
    return custom
