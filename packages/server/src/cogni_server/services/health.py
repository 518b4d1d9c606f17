"""Health of the process's dependencies, for the system routes and the CLI."""

from __future__ import annotations

from cogni_server.services.context import ServerContext
from cogni_server.storage import threads as thread_repo


async def database_problem(ctx: ServerContext) -> str | None:
    """None when Postgres answers a round trip within three seconds; else what went wrong."""
    try:
        async with ctx.pool.connection(timeout=3.0) as conn:
            await thread_repo.ping(conn)
    except Exception as exc:
        return f"unreachable: {type(exc).__name__}"
    return None
