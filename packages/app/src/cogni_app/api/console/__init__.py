"""The operator console at /console: a static single-page app (no build step, nothing fetched from the
internet) and its read-only JSON routes under /console/api (bearer COGNI_ADMIN_TOKEN)."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from fastapi import FastAPI, Request
from fastapi.staticfiles import StaticFiles
from starlette.responses import FileResponse, RedirectResponse

from cogni_app.api.console.routes import router

STATIC = Path(__file__).resolve().parent / "static"


def mount_console(app: FastAPI) -> None:
    """The page and its assets answer without a credential (they hold no data); every data route needs it."""
    app.include_router(router)

    @app.get("/console", include_in_schema=False)
    async def console_root() -> RedirectResponse:
        return RedirectResponse("/console/")

    @app.get("/console/", include_in_schema=False)
    async def console_index(request: Request) -> FileResponse:
        headers = {"Cache-Control": "no-cache", "Content-Security-Policy": content_security_policy(request)}
        return FileResponse(STATIC / "index.html", headers=headers)

    app.mount("/console/static", StaticFiles(directory=STATIC), name="console-static")


def content_security_policy(request: Request) -> str:
    """Scripts, styles and images from this app only; fetches to it and to the Agent Server; no framing."""
    runtime = getattr(request.app.state, "runtime", None)
    connect = ["'self'"]
    if runtime is not None:
        url = urlsplit(runtime.settings.cogni_console_server_url or runtime.settings.langgraph_server_url)
        connect.append(f"{url.scheme}://{url.netloc}")
    return (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        f"connect-src {' '.join(connect)}; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    )
