"""The process's shared parts, as the services see them: one value handed to every service call.

Built once per process by the composition root (``cogni_server.bootstrap``); routes, the CLI and the
background loops (sweepers, scheduler) all pass the same object, so a service never needs an HTTP
request to find its database, broker or workers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from psycopg_pool import AsyncConnectionPool

from cogni_server.auth import Authenticator
from cogni_server.config import Settings
from cogni_server.graphs import GraphRegistry
from cogni_server.graphs.webhooks_config import ThreadTTLConfig, WebhooksConfig
from cogni_server.runs.executor import Executor
from cogni_server.runs.worker import WorkerPool
from cogni_server.storage.run_secrets import SecretBox
from cogni_server.storage.store import StoreBackend
from cogni_server.streaming import StreamBroker
from cogni_server.streaming.thread_log import ThreadLog


@dataclass
class ServerContext:
    settings: Settings
    pool: AsyncConnectionPool[Any]
    checkpointer: Any
    registry: GraphRegistry
    broker: StreamBroker
    executor: Executor
    workers: WorkerPool
    authenticator: Authenticator
    system_assistants: dict[str, dict[str, Any]]  # graph id and assistant id -> row (read-only rows)
    store: StoreBackend  # the long-term memory store (per-tenant views: ``store.for_tenant``)
    thread_log: ThreadLog  # the thread-streaming protocol's per-thread event log
    webhooks: WebhooksConfig = field(default_factory=WebhooksConfig)
    thread_ttl: ThreadTTLConfig = field(default_factory=ThreadTTLConfig)
    secrets: SecretBox | None = None  # COGNI_SECRETS_KEY: runs' LLM keys at rest (None: runs take no key)
