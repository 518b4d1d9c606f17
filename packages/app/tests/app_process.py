"""`cogni-app serve` as a real process on a fresh database, with a stub LiteLLM that only answers the
model list (for tests of the app's own routes: keys, accounts, the console's API; no LLM call)."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from testsupport import ManagedProcess, free_port, fresh_database
from testsupport.asgi import serve_asgi


async def _model_info(_: Request) -> JSONResponse:
    entry = {"model_name": "gpt-4o-mini", "litellm_params": {"model": "openai/gpt-4o-mini"}, "model_info": {}}
    return JSONResponse({"data": [entry]})


@contextmanager
def app_process(
    database_prefix: str, name: str, env: dict[str, str], prepare: Callable[[str], None] | None = None
) -> Iterator[tuple[httpx.Client, str, ManagedProcess]]:
    """(a client of the app, its database URL, the process); `env` adds to the database and stub
    LiteLLM settings (`{database_url}` in a value stands for the fresh database's URL);
    `prepare(database_url)` runs before the app starts."""
    with (
        serve_asgi(Starlette(routes=[Route("/model/info", _model_info)]), lifespan="off") as litellm,
        fresh_database(database_prefix) as db,
    ):
        if prepare is not None:
            prepare(db)
        port = free_port()
        proc = ManagedProcess(
            [sys.executable, "-m", "cogni_app", "serve", "--port", str(port)],
            env={"DATABASE_URL": db, "LITELLM_BASE_URL": litellm, "COGNI_EXECUTOR": "inproc",
                 "COGNI_RECONCILE_INTERVAL_SECONDS": "0",
                 **{k: v.replace("{database_url}", db) for k, v in env.items()}},
            name=name,
        )  # fmt: skip
        try:
            proc.wait_http(f"http://127.0.0.1:{port}/healthz", timeout=60)
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30.0) as http:
                yield http, db, proc
        finally:
            proc.stop()
