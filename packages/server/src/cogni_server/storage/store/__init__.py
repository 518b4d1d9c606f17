"""The long-term memory store: one ``AsyncPostgresStore`` per process, seen per tenant.

``open_store`` builds it on the server's pool (migrations under an advisory lock, pgvector checked
when semantic search is configured); ``StoreBackend.for_tenant`` hands out the tenant's view used by
both the HTTP API and graph runs; ``StoreBackend.start_sweeper`` deletes expired items periodically.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from typing import Any

from psycopg_pool import AsyncConnectionPool

from cogni_server.storage.store.embeddings import EmbeddingError, LiteLLMEmbedder
from cogni_server.storage.store.postgres import CogniPostgresStore, StoreSetupError, open_postgres_store
from cogni_server.storage.store.tenant import TENANT_MARK, TenantStore, check_user_labels, tenant_label

__all__ = [
    "TENANT_MARK",
    "EmbeddingError",
    "LiteLLMEmbedder",
    "StoreBackend",
    "StoreSetupError",
    "TenantStore",
    "check_user_labels",
    "open_store",
    "tenant_label",
]

log = logging.getLogger("cogni_server.store")


@dataclass
class StoreBackend:
    """The process's store and what the API reports about it."""

    store: CogniPostgresStore
    sweep_interval_seconds: float
    embedder: LiteLLMEmbedder | None = None
    _tenants: dict[str, TenantStore] = field(default_factory=dict)
    _sweeper: asyncio.Task[None] | None = None

    @property
    def semantic_search(self) -> bool:
        return self.store.index_config is not None

    @property
    def index_fields(self) -> list[str] | None:
        config = self.store.index_config
        return None if config is None else list(config.get("fields") or ["$"])

    def for_tenant(self, tenant: str) -> TenantStore:
        """The tenant's view for API requests (cached: a few attributes per tenant)."""
        view = self._tenants.get(tenant)
        if view is None:
            if len(self._tenants) > 10_000:
                self._tenants.clear()
            view = self._tenants[tenant] = TenantStore(self.store, tenant)
        return view

    def for_run(self, tenant: str, run: dict[str, Any]) -> TenantStore:
        """The tenant's view for one graph run; embeddings are attributed to the run."""
        attribution = {"run_id": str(run["run_id"]), "thread_id": str(run["thread_id"]), "graph_id": run["graph_id"]}
        return TenantStore(self.store, tenant, attribution)

    async def sweep(self) -> int:
        """Delete every expired item now (all tenants); returns how many went."""
        return await self.store.sweep_ttl()

    def start_sweeper(self) -> None:
        if self._sweeper is None:
            self._sweeper = asyncio.get_running_loop().create_task(self._sweep_loop(), name="store-ttl-sweeper")

    async def _sweep_loop(self) -> None:
        while True:
            await asyncio.sleep(self.sweep_interval_seconds)
            try:
                deleted = await self.sweep()
            except Exception:
                log.exception("store TTL sweep failed; retrying next interval")
                continue
            if deleted:
                log.info("store TTL sweep deleted %d expired item(s)", deleted)

    async def close(self) -> None:
        sweeper, self._sweeper = self._sweeper, None
        if sweeper is not None:
            sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sweeper
        await self.store.aclose()
        if self.embedder is not None:
            await self.embedder.aclose()


async def open_store(
    pool: AsyncConnectionPool[Any],
    *,
    index: dict[str, Any] | None,
    ttl: dict[str, Any],
    embedder: LiteLLMEmbedder | None = None,
) -> StoreBackend:
    """Open the store (``index``/``ttl`` are the library's configs); close it with ``close()``."""
    try:
        store = await open_postgres_store(pool, index=index, ttl=ttl)
    except BaseException:
        if embedder is not None:
            await embedder.aclose()
        raise
    interval = float(ttl.get("sweep_interval_minutes") or 5.0) * 60.0
    return StoreBackend(store=store, sweep_interval_seconds=interval, embedder=embedder)
