"""`cogni-app`: serve the chat API, or migrate the app database."""

from __future__ import annotations

import asyncio
from typing import TypeVar

import typer
import uvicorn
from pydantic import ValidationError

from cogni_app.config import AppSettings, DatabaseSettings

app = typer.Typer(no_args_is_help=True, add_completion=False, help="Cogni app runtime: chat API and billing.")


Settings = TypeVar("Settings", bound=DatabaseSettings)


def _settings(kind: type[Settings]) -> Settings:
    """The settings from the environment, or a readable configuration error and exit code 2."""
    try:
        return kind()
    except ValidationError as exc:
        typer.echo(f"configuration error:\n{exc}", err=True)
        raise typer.Exit(2) from exc


@app.command()
def serve(
    host: str = typer.Option("127.0.0.1", help="Interface to listen on."),
    port: int = typer.Option(8080, help="Port to listen on."),
    migrate: bool = typer.Option(True, help="Apply pending app-database migrations at start-up."),
    log_level: str = typer.Option("info", help="uvicorn log level."),
) -> None:
    """Run the chat API (POST /v1/chat, /v1/agents, /v1/models, /v1/activity, /v1/admin/*, /metrics)."""
    from cogni_ai_core.observability import shutdown_tracing
    from cogni_app.app import create_app

    _observability(log_level)
    settings = _settings(AppSettings)
    try:
        uvicorn.run(
            create_app(settings, run_migrations=migrate),
            host=host,
            port=port,
            log_level=log_level,
            log_config=None,  # uvicorn's loggers go through our structured handler (configure_logging)
            timeout_graceful_shutdown=30,
        )
    finally:
        shutdown_tracing()  # the last requests' spans are exported before we go


def _observability(level: str) -> None:
    """Structured logs (COGNI_LOG_FORMAT) and, when OTEL_* asks for them, traces; a bad value stops here."""
    from cogni_ai_core.observability import LogConfigError, TracingConfigError, configure_logging, configure_tracing

    try:
        configure_logging("cogni-app", level=level)
        configure_tracing("cogni-app")
    except (LogConfigError, TracingConfigError) as exc:
        typer.echo(f"configuration error: {exc}", err=True)
        raise typer.Exit(2) from exc


@app.command("migrate")
def migrate_command() -> None:
    """Apply pending migrations to DATABASE_URL, and set up the in-process conversations' checkpoint tables
    (idempotent, safe to run concurrently)."""
    from cogni_app.db import migrate, setup_checkpoints

    settings = _settings(DatabaseSettings)

    async def run() -> None:
        await migrate(settings.database_url)
        await setup_checkpoints(settings.database_url)

    asyncio.run(run())
    typer.echo("app database is up to date")


@app.callback()
def _main() -> None:
    """Cogni app runtime."""
