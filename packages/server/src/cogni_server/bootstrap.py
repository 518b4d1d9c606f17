"""The composition root: builds one server process (database, checkpointer, graphs, broker, workers)
and tears it down in the right order. The FastAPI app and the CLI both start the process through
``running_server``; nothing else constructs these parts.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from cogni_server import metrics
from cogni_server.auth import Authenticator, build_authenticator
from cogni_server.auth.custom import AuthConfigError, custom_authenticator
from cogni_server.config import Settings
from cogni_server.gcpause import freeze_startup_heap, watch_pauses
from cogni_server.graphs import GraphRegistry
from cogni_server.graphs.config import ProjectConfig
from cogni_server.graphs.store_config import load_embed_function, read_store_config
from cogni_server.graphs.webhooks_config import thread_ttl_config, webhooks_config
from cogni_server.memdiag import snapshot_periodically
from cogni_server.memtrim import trim_periodically
from cogni_server.runs.executor import Executor
from cogni_server.runs.lifecycle import RunLifecycle
from cogni_server.runs.worker import WorkerPool
from cogni_server.services.background import BackgroundJobs
from cogni_server.services.context import ServerContext
from cogni_server.storage import assistants as assistant_repo
from cogni_server.storage.checkpointer import PooledPostgresSaver, setup_checkpointer
from cogni_server.storage.migrations import migrate
from cogni_server.storage.pool import open_pool
from cogni_server.storage.purge import install_fences
from cogni_server.storage.run_secrets import SecretBox
from cogni_server.storage.store import LiteLLMEmbedder, StoreBackend, StoreSetupError, open_store
from cogni_server.storage.thread_events import PooledSeqStore
from cogni_server.streaming import build_broker
from cogni_server.streaming.thread_log import ThreadLog
from cogni_server.streaming.thread_log_memory import InMemoryThreadLog
from cogni_server.streaming.thread_log_redis import RedisThreadLog

MIB = 1024 * 1024

log = logging.getLogger("cogni_server")


def authenticator_for(settings: Settings, project: ProjectConfig | None = None) -> Authenticator:
    """The caller authentication: langgraph.json's custom ``auth`` when present, else the settings' mode;
    a misconfiguration is a start-up error."""
    if project is not None and (custom := custom_authenticator(project.raw, project.path)) is not None:
        if settings.auth_mode.strip().lower() != "none":
            raise AuthConfigError(
                f"{project.path}: 'auth.path' sets custom auth, but COGNI_AUTH_MODE is {settings.auth_mode!r}:"
                " use one or the other (unset COGNI_AUTH_MODE to use the auth file)"
            )
        return custom
    return build_authenticator(
        settings.auth_mode,
        api_keys=settings.api_key_map() or None,
        jwt_secret=settings.jwt_secret,
        jwt_public_key=settings.jwt_public_key,
        jwt_algorithm=settings.jwt_algorithm,
        jwt_audience=settings.jwt_audience,
        jwt_issuer=settings.jwt_issuer,
    )


async def open_server_store(pool: Any, settings: Settings, project: ProjectConfig) -> StoreBackend:
    """The store langgraph.json's ``store`` block asks for (embeddings from a Python function or LiteLLM)."""
    config = read_store_config(project)
    embed: Any = None
    embedder: LiteLLMEmbedder | None = None
    if config.index is not None and config.index.embed_is_python:
        embed = load_embed_function(project, config.index)
    elif config.index is not None:
        if not settings.litellm_base_url:
            raise StoreSetupError(
                f"store.index.embed is {config.index.embed!r} in langgraph.json: set LITELLM_BASE_URL (and"
                " LITELLM_API_KEY) to the LiteLLM proxy that serves it, or name a Python function ('./file.py:func')"
            )
        embed = embedder = LiteLLMEmbedder(
            base_url=settings.litellm_base_url,
            api_key=settings.litellm_api_key,
            model=config.index.litellm_model,
            dims=config.index.dims,
            timeout=settings.embeddings_timeout_seconds,
        )
    return await open_store(pool, index=config.library_index(embed), ttl=config.library_ttl(), embedder=embedder)


def build_thread_log(settings: Settings, pool: Any) -> ThreadLog:
    """The thread-streaming event log: in Redis when configured (shared by every instance), else in memory."""
    store = PooledSeqStore(pool)
    max_events, ttl = settings.thread_stream_max_events, settings.thread_stream_ttl_seconds
    if settings.redis_url:
        return RedisThreadLog.from_url(
            settings.redis_url,
            store,
            key_prefix=settings.redis_key_prefix,
            max_events=max_events,
            ttl_seconds=ttl,
            outage_seconds=settings.broker_outage_seconds,
        )
    memory = int(settings.thread_stream_memory_mb * MIB)
    return InMemoryThreadLog(store, max_events=max_events, ttl_seconds=ttl, max_bytes=memory)


@asynccontextmanager
async def running_server(
    settings: Settings,
    database_url: str,
    *,
    registry: GraphRegistry,
    authenticator: Authenticator,
    start_workers: bool = True,
) -> AsyncIterator[ServerContext]:
    """Migrate, open the pool and broker, register system assistants, start the workers; on exit
    drain the workers (running runs finish or go back to the queue), then close broker and pool."""
    applied = await migrate(database_url)
    if applied:
        log.info("applied migrations: %s", applied)
    pool = await open_pool(
        database_url,
        min_size=settings.pool_min_size,
        max_size=settings.pool_max_size,
        connect_timeout=settings.database_connect_timeout,
    )
    broker = build_broker(
        settings.redis_url or None,
        key_prefix=settings.redis_key_prefix,
        outage_seconds=settings.broker_outage_seconds,
        memory_bytes=int(settings.broker_memory_mb * MIB),
    )
    thread_log = build_thread_log(settings, pool)
    metrics.watch_stream_memory(broker=broker, thread_log=thread_log)
    workers: WorkerPool | None = None
    store: StoreBackend | None = None
    jobs: BackgroundJobs | None = None
    trimmer: asyncio.Task[None] | None = None
    snapshots: asyncio.Task[None] | None = None
    try:
        checkpointer = PooledPostgresSaver(pool)
        await setup_checkpointer(pool, checkpointer)
        try:
            store = await open_server_store(pool, settings, registry.project)
        except StoreSetupError as exc:
            log.error("the store cannot start: %s", exc)
            raise
        fenced = await install_fences(pool)  # the purge fence on the checkpointer's and the store's tables
        if fenced:
            log.info("purge fence installed on %s", fenced)
        system_assistants: dict[str, dict[str, Any]] = {}
        async with pool.connection() as conn:
            for graph_id in registry.graph_ids():
                row = await assistant_repo.upsert_system(conn, graph_id)
                system_assistants[graph_id] = system_assistants[row["assistant_id"]] = row
        secrets = SecretBox(settings.secrets_key.get_secret_value()) if settings.secrets_key else None
        executor = Executor(
            secrets=secrets,
            pool=pool,
            checkpointer=checkpointer,
            registry=registry,
            broker=broker,
            run_timeout=settings.run_timeout_seconds,
            store=store,
            max_attempts=settings.max_attempts,
            lifecycle=RunLifecycle(thread_log),
        )
        workers = WorkerPool(
            pool=pool,
            executor=executor,
            broker=broker,
            settings=settings,
            enabled=settings.run_workers and start_workers,
        )
        context = ServerContext(
            settings=settings,
            pool=pool,
            checkpointer=checkpointer,
            registry=registry,
            broker=broker,
            executor=executor,
            workers=workers,
            authenticator=authenticator,
            system_assistants=system_assistants,
            store=store,
            secrets=secrets,
            webhooks=webhooks_config(
                registry.project.raw,
                env_allowed_domains=settings.webhook_allowed_domains,
                env_secret=settings.webhook_secret,
            ),
            thread_ttl=thread_ttl_config(registry.project.raw, sweep_seconds=settings.thread_ttl_sweep_seconds),
            thread_log=thread_log,
        )
        workers.start()
        if workers.enabled:
            store.start_sweeper()
        jobs = BackgroundJobs(context)
        jobs.start()
        if settings.malloc_trim_seconds > 0:
            trimmer = asyncio.create_task(trim_periodically(settings.malloc_trim_seconds), name="malloc-trim")
        watch_pauses()
        if settings.gc_freeze:
            freeze_startup_heap()
        if settings.tracemalloc_dir is not None:
            snapshots = asyncio.create_task(
                snapshot_periodically(
                    settings.tracemalloc_dir,
                    settings.tracemalloc_seconds,
                    settings.tracemalloc_frames,
                    settings.tracemalloc_delay_seconds,
                ),
                name="tracemalloc-snapshots",
            )
        log.info(
            "cogni-server ready: graphs=%s workers=%s auth=%s",
            registry.graph_ids(),
            settings.n_jobs_per_worker if workers.enabled else 0,
            settings.auth_mode,
        )
        yield context
    finally:
        for task in (trimmer, snapshots):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if jobs is not None:
            await jobs.stop()
        if workers is not None:
            await workers.drain(settings.drain_seconds)
        if store is not None:
            await store.close()
        await thread_log.close()  # after the drain: the runs' terminals are written first
        await broker.close()
        await pool.close()
