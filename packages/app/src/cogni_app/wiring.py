"""Composition: builds one process's collaborators and use cases from the settings, runs their background
tasks, and shuts them down in order. No web framework here: `cogni_app.app` serves what this builds."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import structlog

from cogni_app.billing import Accounts, ApiKeys, CreditHolds, Ledger, LlmKeyDeriver, LlmKeys
from cogni_app.billing.reads import BillingReads
from cogni_app.config import AppSettings, BillingSettings
from cogni_app.db import AppDatabase, migrate, postgres_checkpointer, setup_checkpoints
from cogni_app.deletion import DeletionJobs, DeletionReads, ServerPurgeClient, SpendLogScrubber
from cogni_app.executors import ExecutorRouter, GraphProvider, InProcProvider, LangGraphServerProvider
from cogni_app.models import ModelAllowlist
from cogni_app.reconcile import LiteLLMSpendLogsApiSource, Reconciler, SinkTableSource, SpendLogSource
from cogni_app.relay import Relay
from cogni_app.service_auth import ServiceTokenMinter
from cogni_app.services import (
    AccountService,
    AgentsService,
    AppServices,
    ChatPolicy,
    ChatService,
    ConsoleService,
    DeletionPolicy,
    DeletionService,
    KeyService,
    LlmKeyService,
    OperatorService,
)
from cogni_app.tls import client_ssl_context

log = structlog.get_logger(__name__)
RELAY_DRAIN_SECONDS = 30.0


def service_tokens(settings: AppSettings) -> ServiceTokenMinter | None:
    """The minter of the app's tokens for the Agent Server (None without COGNI_JWT_SECRET)."""
    if not settings.cogni_jwt_secret:
        return None
    return ServiceTokenMinter(
        settings.cogni_jwt_secret.get_secret_value(),
        audience=settings.cogni_jwt_audience,
        ttl_seconds=settings.cogni_jwt_ttl_seconds,
    )


def llm_keys(settings: AppSettings, db: AppDatabase) -> LlmKeys:
    """Per-account LiteLLM keys; without COGNI_LLM_KEY_SECRET runs use the shared LITELLM_API_KEY."""
    secret = settings.cogni_llm_key_secret
    return LlmKeys(db, LlmKeyDeriver(secret.get_secret_value()) if secret is not None else None)


def build_executor(settings: AppSettings, db: AppDatabase) -> tuple[ExecutorRouter, list[LangGraphServerProvider]]:
    """Only the providers some route names are built (the in-process one imports the graphs); in-process
    conversations are checkpointed in the app database. Runs (in-process and on the Agent Server) use the
    account's LiteLLM key when per-account keys are on."""
    routes = settings.executor_routes()
    providers: dict[str, GraphProvider] = {}
    closers: list[LangGraphServerProvider] = []
    keys = llm_keys(settings, db)
    key_for_run = keys.key_for_run if keys.enabled else None
    if "inproc" in routes.values():
        providers["inproc"] = InProcProvider(checkpointer=postgres_checkpointer(db), llm_key=key_for_run)
    if "server" in routes.values():
        tokens = service_tokens(settings)
        assert tokens is not None  # enforced by AppSettings
        server = LangGraphServerProvider(
            settings.langgraph_server_url, tokens=tokens, ssl_context=server_tls(settings), llm_key=key_for_run
        )
        providers["server"] = server
        closers.append(server)
    return ExecutorRouter(providers, routes), closers


def server_tls(settings: AppSettings) -> ssl.SSLContext | None:
    """mTLS to the Agent Server when configured: its CA, the app's certificate and key."""
    return client_ssl_context(
        settings.cogni_server_tls_ca, settings.cogni_server_tls_cert, settings.cogni_server_tls_key
    )


def build_spend_source(settings: BillingSettings) -> SpendLogSource:
    """The sink table when configured (this repo's LiteLLM setup), else LiteLLM's /spend/logs API."""
    if settings.cogni_spend_sink_database_url:
        return SinkTableSource(settings.cogni_spend_sink_database_url)
    return LiteLLMSpendLogsApiSource(settings.litellm_base_url, settings.litellm_api_key.get_secret_value())


def build_deletion(settings: AppSettings, db: AppDatabase) -> DeletionService:
    """The data-deletion use case: the server's purge when graphs run there (needs the operator token), the
    sink's table when configured."""
    server: ServerPurgeClient | None = None
    unavailable: str | None = None
    if "server" in settings.executor_routes().values():
        if settings.cogni_server_operator_token is None:
            unavailable = "data deletion needs COGNI_SERVER_OPERATOR_TOKEN to purge the account on the Agent Server"
        else:
            token = settings.cogni_server_operator_token.get_secret_value()
            server = ServerPurgeClient(settings.langgraph_server_url, token, ssl_context=server_tls(settings))
    sink = settings.cogni_spend_sink_database_url
    return DeletionService(
        jobs=DeletionJobs(db),
        server=server,
        spend_log=SpendLogScrubber(sink) if sink else None,
        unavailable=unavailable,
        policy=DeletionPolicy(retry_seconds=settings.cogni_deletion_retry_seconds),
    )


def chat_policy(settings: AppSettings) -> ChatPolicy:
    return ChatPolicy(
        default_graph_id=settings.cogni_default_graph_id,
        markup=settings.user_price_markup_factor,
        first_event_timeout_seconds=settings.cogni_first_event_timeout_seconds,
    )


@asynccontextmanager
async def open_services(settings: AppSettings, *, run_migrations: bool = True) -> AsyncIterator[AppServices]:
    """The use cases of one process. On exit: runs in flight finish and bill (up to 30 s), the reconciler's
    sweep stops, the Agent Server client, the allowlist and the database pool close."""
    if run_migrations:
        await migrate(settings.database_url)
        if "inproc" in settings.executor_routes().values():
            await setup_checkpoints(settings.database_url)
    db = AppDatabase(settings.database_url)
    await db.open()
    models = ModelAllowlist(
        settings.litellm_base_url,
        settings.litellm_api_key.get_secret_value(),
        refresh_seconds=settings.cogni_models_refresh_seconds,
    )
    executor, closers = build_executor(settings, db)
    sweeper: asyncio.Task[None] | None = None
    relay: Relay | None = None
    deletion: DeletionService | None = None
    try:
        await models.start()
        accounts = Accounts(db)
        ledger = Ledger(db, markup=settings.user_price_markup_factor, is_free_model=models.is_free)
        reconciler = Reconciler(
            ledger, build_spend_source(settings), retention_days=settings.cogni_spend_log_retention_days
        )
        relay = Relay(
            ledger=ledger,
            reconciler=reconciler,
            reconcile_delay_seconds=settings.cogni_reconcile_delay_seconds,
            on_billing_failure=reconciler.request_catchup,  # its sweeps take over what the stream could not bill
        )
        deletion = build_deletion(settings, db)
        services = AppServices(
            chat=ChatService(
                models=models,
                holds=CreditHolds(db, ttl_seconds=settings.cogni_credit_hold_ttl_seconds),
                executor=executor,
                relay=relay,
                policy=chat_policy(settings),
            ),
            agents=AgentsService(executor, default_graph_id=settings.cogni_default_graph_id),
            accounts=AccountService(accounts=accounts, ledger=ledger, models=models),
            operator=OperatorService(accounts=accounts, ledger=ledger, reconciler=reconciler),
            console=ConsoleService(
                reads=BillingReads(db),
                deletion_reads=DeletionReads(db),
                accounts=accounts,
                reconciler=reconciler,
                tokens=service_tokens(settings),
                server_url=settings.cogni_console_server_url or settings.langgraph_server_url,
                reconcile_interval_seconds=settings.cogni_reconcile_interval_seconds,
            ),
            deletion=deletion,
            keys=KeyService(ApiKeys(db)),
            llm_keys=LlmKeyService(llm_keys(settings, db)),
        )
        if settings.cogni_reconcile_interval_seconds > 0:  # first, so the catch-up sweep starts at once
            sweeper = asyncio.create_task(
                reconciler.run_periodically(
                    settings.cogni_reconcile_interval_seconds,
                    catchup_seconds=settings.cogni_reconcile_catchup_seconds,
                    catchup_interval_seconds=settings.cogni_reconcile_catchup_interval_seconds,
                )
            )
        await deletion.resume_all()  # jobs an earlier process left unfinished
        log.info("app_started", executor_routes=settings.executor_routes())
        yield services
    finally:
        if deletion is not None:
            await deletion.aclose()
        if relay is not None:
            await relay.aclose(drain_seconds=RELAY_DRAIN_SECONDS)  # runs in flight finish and bill before we go
        if sweeper is not None:
            sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sweeper
        for closer in closers:
            await closer.aclose()
        await models.stop()
        await db.close()
