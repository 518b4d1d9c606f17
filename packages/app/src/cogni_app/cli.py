"""`cogni-app`: serve the chat API, run the billing worker, migrate the app database, manage API keys."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

import structlog
import typer
import uvicorn
from pydantic import ValidationError

from cogni_app.config import AppSettings, BillingSettings, DatabaseSettings

if TYPE_CHECKING:
    from cogni_app.db import AppDatabase
    from cogni_app.services import KeyService, LlmKeyService

app = typer.Typer(no_args_is_help=True, add_completion=False, help="Cogni app runtime: chat API and billing.")
keys_app = typer.Typer(
    no_args_is_help=True,
    help="API keys (DATABASE_URL): list without secrets, revoke, rotate. Output is the operator routes' JSON.",
)
app.add_typer(keys_app, name="keys")
llm_keys_app = typer.Typer(
    no_args_is_help=True,
    help="Per-account LiteLLM keys (DATABASE_URL, COGNI_LLM_KEY_SECRET): list, mint, rotate, revoke."
    " Output is the operator routes' JSON; a minted or rotated key is printed this once.",
)
app.add_typer(llm_keys_app, name="llm-keys")


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


@app.command("reconcile-worker")
def reconcile_worker(
    host: str = typer.Option("127.0.0.1", help="Interface of the metrics endpoint."),
    metrics_port: int = typer.Option(9464, help="Port of the Prometheus /metrics endpoint (0: none)."),
    migrate: bool = typer.Option(True, help="Apply pending app-database migrations at start-up."),
    log_level: str = typer.Option("info", help="Log level."),
) -> None:
    """Bill from the spend log in a process of its own, whether or not an app process is alive: sweep from the
    durable cursor every COGNI_RECONCILE_WORKER_INTERVAL_SECONDS (1 s). Several side by side are safe."""
    from prometheus_client import start_http_server

    from cogni_ai_core.observability import shutdown_tracing
    from cogni_app.worker import run_worker

    _observability(log_level)
    settings = _settings(BillingSettings)
    if metrics_port:
        start_http_server(metrics_port, addr=host)
    try:
        asyncio.run(run_worker(settings, run_migrations=migrate))
    finally:
        shutdown_tracing()


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


def _on_app_database(
    database_url: str,
    use: Callable[[AppDatabase], Awaitable[Any]],
    *,
    not_found_or_conflict: tuple[type[Exception], ...],
    unavailable: tuple[type[Exception], ...] = (),
) -> Any:
    """Run one operator action on the app database (a pool of one connection). The domain's "no such
    account or key" and "conflicts with its state" errors exit 1 (what the operator routes answer 404 and
    409); an unusable configuration (`unavailable`), a database that cannot be reached or is not migrated
    exit 2. stdout stays the action's JSON: logs go to stderr."""
    from psycopg.errors import UndefinedTable
    from psycopg_pool import PoolTimeout

    from cogni_app.db import AppDatabase

    structlog.configure(logger_factory=structlog.PrintLoggerFactory(sys.stderr))

    async def run() -> Any:
        db = AppDatabase(database_url, min_size=1, max_size=1)
        await db.open()
        try:
            return await use(db)
        finally:
            await db.close()

    try:
        return asyncio.run(run())
    except not_found_or_conflict as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    except unavailable as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    except PoolTimeout:
        typer.echo("error: cannot connect to DATABASE_URL", err=True)
        raise typer.Exit(2) from None
    except UndefinedTable:
        typer.echo("error: the app database is not migrated: run `cogni-app migrate`", err=True)
        raise typer.Exit(2) from None


def _with_keys(action: Callable[[KeyService], Awaitable[Any]]) -> Any:
    """Run one API-key action (errors: `_on_app_database`)."""
    from cogni_app.billing import ApiKeys, RevokedApiKey, UnknownAccount, UnknownApiKeyId
    from cogni_app.services import KeyService

    settings = _settings(DatabaseSettings)
    return _on_app_database(
        settings.database_url,
        lambda db: action(KeyService(ApiKeys(db))),
        not_found_or_conflict=(UnknownAccount, UnknownApiKeyId, RevokedApiKey),
    )


def _print(body: Any) -> None:
    typer.echo(json.dumps(body, indent=2))


@keys_app.command("list")
def keys_list(account_id: str = typer.Argument(..., help="The billing account's id.")) -> None:
    """The account's API keys, revoked ones included: id, label, prefix, created, revoked. Never the secret."""
    from cogni_app.api.keys import key_body

    keys = _with_keys(lambda service: service.list_keys(account_id))
    _print({"billingAccountId": account_id, "apiKeys": [key_body(k) for k in keys]})


@keys_app.command("revoke")
def keys_revoke(key_id: str = typer.Argument(..., help="The key's id (from `keys list`).")) -> None:
    """Revoke a key: the app refuses it from its next request on (idempotent)."""
    from cogni_app.api.keys import key_body

    _print(key_body(_with_keys(lambda service: service.revoke(key_id))))


@keys_app.command("rotate")
def keys_rotate(key_id: str = typer.Argument(..., help="The key's id (from `keys list`).")) -> None:
    """A new secret for the key (same id and label), printed this once; the old secret is refused at once."""
    from cogni_app.api.keys import key_body

    rotated = _with_keys(lambda service: service.rotate(key_id))
    _print({**key_body(rotated.key), "apiKey": rotated.api_key})


def _with_llm_keys(action: Callable[[LlmKeyService], Awaitable[Any]]) -> Any:
    """Run one LLM-key action (errors: `_on_app_database`; no secret to mint with exits 2)."""
    from cogni_app.billing import (
        LlmKeyDeriver,
        LlmKeyExists,
        LlmKeys,
        LlmKeysUnavailable,
        RevokedLlmKey,
        UnknownAccount,
        UnknownLlmKeyId,
    )
    from cogni_app.config import LlmKeySettings
    from cogni_app.services import LlmKeyService

    settings = _settings(LlmKeySettings)
    secret = settings.cogni_llm_key_secret
    deriver = LlmKeyDeriver(secret.get_secret_value()) if secret else None
    return _on_app_database(
        settings.database_url,
        lambda db: action(LlmKeyService(LlmKeys(db, deriver))),
        not_found_or_conflict=(UnknownAccount, UnknownLlmKeyId, RevokedLlmKey, LlmKeyExists),
        unavailable=(LlmKeysUnavailable,),
    )


@llm_keys_app.command("list")
def llm_keys_list(account_id: str = typer.Argument(..., help="The billing account's id.")) -> None:
    """The account's LiteLLM keys, revoked ones included. Never the key or its hash."""
    from cogni_app.api.llm_keys import llm_key_body

    keys = _with_llm_keys(lambda service: service.list_keys(account_id))
    _print({"billingAccountId": account_id, "llmKeys": [llm_key_body(k) for k in keys]})


@llm_keys_app.command("mint")
def llm_keys_mint(
    account_id: str = typer.Argument(..., help="The billing account's id."),
    rpm_limit: int | None = typer.Option(None, min=1, help="Requests per minute LiteLLM allows the key."),
    tpm_limit: int | None = typer.Option(None, min=1, help="Tokens per minute LiteLLM allows the key."),
) -> None:
    """A new key for an account without an active one, printed this once."""
    from cogni_app.api.llm_keys import llm_key_body

    issued = _with_llm_keys(lambda service: service.mint(account_id, rpm_limit=rpm_limit, tpm_limit=tpm_limit))
    _print({**llm_key_body(issued.key), "llmKey": issued.llm_key})


@llm_keys_app.command("rotate")
def llm_keys_rotate(key_id: str = typer.Argument(..., help="The key's id (from `llm-keys list`).")) -> None:
    """Revoke the key and mint its successor (same account and limits), printed this once."""
    from cogni_app.api.llm_keys import llm_key_body

    issued = _with_llm_keys(lambda service: service.rotate(key_id))
    _print({**llm_key_body(issued.key), "llmKey": issued.llm_key})


@llm_keys_app.command("revoke")
def llm_keys_revoke(key_id: str = typer.Argument(..., help="The key's id (from `llm-keys list`).")) -> None:
    """Revoke the key: LiteLLM refuses it from its next call on (idempotent)."""
    from cogni_app.api.llm_keys import llm_key_body

    _print(llm_key_body(_with_llm_keys(lambda service: service.revoke(key_id))))


@app.callback()
def _main() -> None:
    """Cogni app runtime."""
