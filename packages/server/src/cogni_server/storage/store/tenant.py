"""One tenant's view of the shared store: every namespace gets a hidden first label.

The HTTP API and the graphs of a tenant's runs both use a ``TenantStore``, so memory a graph writes
is what the API reads, and tenant B never reaches tenant A's items, even under the same namespace.

- The hidden label is ``~t~`` + the tenant's name in unpadded base64url: never empty, never
  containing ``.``. User labels starting with ``~t~`` are refused everywhere, so no user namespace
  can name another tenant's.
- Gets, puts and searches prepend it; results have it stripped, so a tenant never sees it.
- Listing namespaces builds its own match conditions: the prefix becomes the hidden label + the
  user's prefix, padded with ``*`` up to the suffix's length (otherwise a suffix starting with
  ``*`` could match the hidden label itself), and ``max_depth`` counts one more label.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Iterable, Mapping
from typing import cast

from langgraph.store.base import (
    BaseStore,
    GetOp,
    InvalidNamespaceError,
    Item,
    ListNamespacesOp,
    MatchCondition,
    Op,
    PutOp,
    Result,
    SearchItem,
    SearchOp,
    validate_op_namespace,
)
from langgraph.store.postgres.aio import AsyncPostgresStore

from cogni_server.storage.store.embeddings import EMBEDDING_ATTRIBUTION

TENANT_MARK = "~t~"


def tenant_label(tenant: str) -> str:
    """The hidden first label of ``tenant``'s namespaces."""
    return TENANT_MARK + base64.urlsafe_b64encode(tenant.encode()).decode().rstrip("=")


def check_user_labels(labels: Iterable[str]) -> None:
    """Refuse labels that would reach into the hidden tenant label space."""
    for label in labels:
        if isinstance(label, str) and label.startswith(TENANT_MARK):
            raise InvalidNamespaceError(f"namespace label {label!r} starts with {TENANT_MARK!r}, which is reserved")


class TenantStore(BaseStore):
    """A ``BaseStore`` over the shared ``AsyncPostgresStore``, confined to one tenant."""

    supports_ttl = True

    def __init__(self, inner: AsyncPostgresStore, tenant: str, attribution: Mapping[str, str] | None = None) -> None:
        self.inner = inner
        self.tenant = tenant
        self._label = (tenant_label(tenant),)
        # the base class reads these to fill defaults (default_ttl, refresh_on_read) before batching
        self.ttl_config = inner.ttl_config
        self.index_config = inner.index_config
        self._attribution = {"tenant": tenant, "purpose": "store_embedding", **(attribution or {})}

    # -- ops in, results out ---------------------------------------------------------------------
    def _map(self, op: Op) -> Op:
        validate_op_namespace(op)
        if isinstance(op, GetOp | PutOp):
            if not op.namespace:
                raise InvalidNamespaceError("Namespace cannot be empty.")
            check_user_labels(op.namespace)
            return op._replace(namespace=self._label + tuple(op.namespace))
        if isinstance(op, SearchOp):
            check_user_labels(op.namespace_prefix)
            return op._replace(namespace_prefix=self._label + tuple(op.namespace_prefix))
        if isinstance(op, ListNamespacesOp):
            return self._map_list(op)
        raise TypeError(f"unknown store operation: {type(op).__name__}")

    def _map_list(self, op: ListNamespacesOp) -> ListNamespacesOp:
        prefix: tuple[str, ...] = ()
        suffix: tuple[str, ...] = ()
        for condition in op.match_conditions or ():
            check_user_labels(condition.path)
            if condition.match_type == "prefix":
                prefix = tuple(condition.path)
            elif condition.match_type == "suffix":
                suffix = tuple(condition.path)
            else:
                raise InvalidNamespaceError(f"unknown namespace match type {condition.match_type!r}")
        padded = prefix + ("*",) * max(0, len(suffix) - len(prefix))
        conditions = [MatchCondition(match_type="prefix", path=self._label + padded)]
        if suffix:
            conditions.append(MatchCondition(match_type="suffix", path=suffix))
        depth = None if op.max_depth is None else op.max_depth + 1
        return ListNamespacesOp(match_conditions=tuple(conditions), max_depth=depth, limit=op.limit, offset=op.offset)

    def _strip(self, namespace: tuple[str, ...]) -> tuple[str, ...]:
        if namespace[: len(self._label)] != self._label:  # the SQL scopes by the label; never expected
            raise RuntimeError("store returned a namespace outside the caller's tenant")
        return tuple(namespace[len(self._label) :])

    def _unmap(self, op: Op, result: Result) -> Result:
        if isinstance(op, GetOp) and isinstance(result, Item):
            return Item(
                namespace=self._strip(result.namespace),
                key=result.key,
                value=result.value,
                created_at=result.created_at,
                updated_at=result.updated_at,
            )
        if isinstance(op, SearchOp) and isinstance(result, list):
            items = cast(list[SearchItem], result)
            return [
                SearchItem(
                    namespace=self._strip(item.namespace),
                    key=item.key,
                    value=item.value,
                    created_at=item.created_at,
                    updated_at=item.updated_at,
                    score=item.score,
                )
                for item in items
            ]
        if isinstance(op, ListNamespacesOp) and isinstance(result, list):
            return [self._strip(namespace) for namespace in cast(list[tuple[str, ...]], result)]
        return result

    # -- BaseStore ---------------------------------------------------------------------------------
    async def abatch(self, ops: Iterable[Op]) -> list[Result]:
        ops = list(ops)
        mapped = [self._map(op) for op in ops]
        token = EMBEDDING_ATTRIBUTION.set(self._attribution)
        try:
            results = await self.inner.abatch(mapped)
        finally:
            EMBEDDING_ATTRIBUTION.reset(token)
        return [self._unmap(op, result) for op, result in zip(ops, results, strict=True)]

    def batch(self, ops: Iterable[Op]) -> list[Result]:
        """For sync graph nodes (they run in worker threads): hop onto the store's event loop."""
        loop: asyncio.AbstractEventLoop = self.inner.loop
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            raise asyncio.InvalidStateError(
                "synchronous store calls on the server's event loop would deadlock: use the async methods"
                " (await store.aget(...), store.aput(...), ...)"
            )
        return asyncio.run_coroutine_threadsafe(self.abatch(list(ops)), loop).result()

    def __repr__(self) -> str:
        return f"TenantStore(tenant={self.tenant!r})"
