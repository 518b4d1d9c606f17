"""The operator console at /console: a static single-page app (no build step, nothing fetched from the
internet) and its read-only JSON routes under /console/api (bearer COGNI_ADMIN_TOKEN)."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
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
    async def console_index() -> FileResponse:
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})

    app.mount("/console/static", StaticFiles(directory=STATIC), name="console-static")
