"""The store: items under namespaces, per tenant, with TTLs and (when configured) semantic search.

Every call works on the caller's own ``TenantStore``: tenant B never reads, lists, searches or
deletes tenant A's items, even under an identical namespace, and namespaces come back without any
tenant label. The rules the library leaves loose are checked here, so a bad request is a 422
naming the problem rather than a database error or a silently ignored field.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from langgraph.store.base import NOT_PROVIDED, InvalidNamespaceError, Item, NotProvided, SearchItem

from cogni_server.errors import Invalid
from cogni_server.graphs.store_config import MAX_TTL_MINUTES
from cogni_server.services.context import ServerContext
from cogni_server.storage.store import TENANT_MARK, TenantStore

MAX_PAGE = 1000
MAX_OFFSET = 2**31 - 1
OPERATORS = ("$eq", "$ne", "$gt", "$gte", "$lt", "$lte")
RANGE_OPERATORS = ("$gt", "$gte", "$lt", "$lte")
NO_INDEX = "semantic search is not configured on this server (store.index in langgraph.json)"

Index = Literal[False] | list[str] | None


def _tenant_store(ctx: ServerContext, tenant: str) -> TenantStore:
    return ctx.store.for_tenant(tenant)


def check_namespace(
    labels: Sequence[Any], what: str, *, wildcard: bool = False, empty_ok: bool = False
) -> tuple[str, ...]:
    """Labels the store can keep and give back unchanged; ``*`` only where it is a wildcard."""
    if not labels and not empty_ok:
        raise Invalid(f"{what} cannot be empty")
    for label in labels:
        if not isinstance(label, str) or not label:
            raise Invalid(f"{what}: labels must be non-empty strings, got {label!r}")
        if "." in label:
            raise Invalid(f"{what}: label {label!r} contains '.', which separates labels")
        if "\x00" in label:
            raise Invalid(f"{what}: label {label!r} contains a NUL character")
        if label.startswith(TENANT_MARK):
            raise Invalid(f"{what}: labels may not start with {TENANT_MARK!r} (reserved)")
        if label == "*" and not wildcard:
            raise Invalid(f"{what}: '*' cannot be a label (it is the one-label wildcard of namespace listings)")
    return tuple(labels)


def _key(key: Any) -> str:
    if not isinstance(key, str) or not key:
        raise Invalid("key must be a non-empty string")
    if "\x00" in key:
        raise Invalid("key contains a NUL character")
    return key


def check_ttl(ttl: Any) -> int | None:
    """``ttl`` in whole minutes (the library refreshes with whole minutes), or None for no expiry."""
    if ttl is None:
        return None
    if isinstance(ttl, float) and math.isfinite(ttl) and ttl.is_integer():
        ttl = int(ttl)
    if isinstance(ttl, bool) or not isinstance(ttl, int) or not 1 <= ttl <= MAX_TTL_MINUTES:
        raise Invalid(f"ttl must be null or a whole number of minutes from 1 to {MAX_TTL_MINUTES}, got {ttl!r}")
    return ttl


def check_filter(raw: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """Top-level keys of the value: a value (equality) or ``{"$op": operand, ...}``."""
    if not raw:
        return None
    out: dict[str, Any] = {}
    for key, condition in raw.items():
        if not key:
            raise Invalid("filter: keys must be non-empty")
        is_object = isinstance(condition, dict)
        operators = [k for k in condition if isinstance(k, str) and k.startswith("$")] if is_object else []
        if not operators:
            out[key] = {"$eq": condition} if is_object else condition
            continue
        if len(operators) != len(condition):
            raise Invalid(f"filter.{key}: mixes operators and plain fields; use {{'$eq': {{...}}}} to match an object")
        for op, operand in condition.items():
            if op not in OPERATORS:
                raise Invalid(f"filter.{key}: unsupported operator {op!r} (supported: {', '.join(OPERATORS)})")
            if op in RANGE_OPERATORS and (isinstance(operand, bool) or not isinstance(operand, int | float | str)):
                raise Invalid(f"filter.{key}.{op}: compares numbers or strings, got {operand!r}")
        out[key] = dict(condition)
    return out


def _page(limit: int, offset: int) -> None:
    if not 1 <= limit <= MAX_PAGE:
        raise Invalid(f"limit must be from 1 to {MAX_PAGE}, got {limit}")
    if not 0 <= offset <= MAX_OFFSET:
        raise Invalid(f"offset must be from 0 to {MAX_OFFSET}, got {offset}")


def item_out(item: Item) -> dict[str, Any]:
    return {
        "namespace": list(item.namespace),
        "key": item.key,
        "value": item.value,
        "created_at": item.created_at,
        "updated_at": item.updated_at,
    }


def search_item_out(item: SearchItem) -> dict[str, Any]:
    return {**item_out(item), "score": item.score}


async def put_item(
    ctx: ServerContext,
    tenant: str,
    namespace: Sequence[Any],
    key: Any,
    value: Any,
    *,
    index: Index | NotProvided = NOT_PROVIDED,
    ttl: Any = NOT_PROVIDED,
) -> None:
    """Create or replace one item (``created_at`` is kept on replace). ``ttl`` not given -> the
    configured default; ``index`` not given -> the configured fields."""
    ns = check_namespace(namespace, "namespace")
    if ns[0] == "langgraph":
        raise Invalid('namespace: the root label "langgraph" is reserved')
    if not isinstance(value, dict):
        raise Invalid(f"value must be a JSON object, got {type(value).__name__}")
    if isinstance(index, list):
        if not ctx.store.semantic_search:
            raise Invalid(f"index: {NO_INDEX}")
        if not all(isinstance(path, str) and path for path in index):
            raise Invalid("index must be false or a list of non-empty JSON paths")
    elif index not in (False, None, NOT_PROVIDED):
        raise Invalid("index must be false or a list of non-empty JSON paths")
    store = _tenant_store(ctx, tenant)
    minutes: int | NotProvided | None = NOT_PROVIDED if ttl is NOT_PROVIDED else check_ttl(ttl)
    paths: Index = None if isinstance(index, NotProvided) else index
    try:
        await store.aput(ns, _key(key), value, index=paths, ttl=minutes)
    except InvalidNamespaceError as exc:
        raise Invalid(f"namespace: {exc}") from None


async def get_item(
    ctx: ServerContext, tenant: str, namespace: Sequence[Any], key: Any, *, refresh_ttl: bool | None = None
) -> dict[str, Any] | None:
    """The item, or None when absent (expired items are absent even before the sweeper runs)."""
    ns = check_namespace(namespace, "namespace")
    try:
        item = await _tenant_store(ctx, tenant).aget(ns, _key(key), refresh_ttl=refresh_ttl)
    except InvalidNamespaceError as exc:
        raise Invalid(f"namespace: {exc}") from None
    return None if item is None else item_out(item)


async def delete_item(ctx: ServerContext, tenant: str, namespace: Sequence[Any], key: Any) -> None:
    """Delete one item; deleting an absent item is not an error."""
    ns = check_namespace(namespace, "namespace")
    try:
        await _tenant_store(ctx, tenant).adelete(ns, _key(key))
    except InvalidNamespaceError as exc:
        raise Invalid(f"namespace: {exc}") from None


async def search_items(
    ctx: ServerContext,
    tenant: str,
    namespace_prefix: Sequence[Any],
    *,
    filter: Mapping[str, Any] | None = None,
    limit: int = 10,
    offset: int = 0,
    query: str | None = None,
    refresh_ttl: bool | None = None,
) -> list[dict[str, Any]]:
    """Items under a namespace prefix (whole labels): newest first, or by similarity to ``query``."""
    prefix = check_namespace(namespace_prefix, "namespace_prefix", empty_ok=True)
    conditions = check_filter(filter)
    _page(limit, offset)
    if query is not None and not ctx.store.semantic_search:
        raise Invalid(f"query: {NO_INDEX}")
    try:
        found = await _tenant_store(ctx, tenant).asearch(
            prefix, query=query or None, filter=conditions, limit=limit, offset=offset, refresh_ttl=refresh_ttl
        )
    except InvalidNamespaceError as exc:
        raise Invalid(f"namespace_prefix: {exc}") from None
    return [search_item_out(item) for item in found]


async def list_namespaces(
    ctx: ServerContext,
    tenant: str,
    *,
    prefix: Sequence[Any] | None = None,
    suffix: Sequence[Any] | None = None,
    max_depth: int | None = None,
    limit: int = 100,
    offset: int = 0,
) -> list[list[str]]:
    """Distinct namespaces (truncated to ``max_depth`` labels), sorted; ``*`` matches one label."""
    pre = check_namespace(prefix or (), "prefix", wildcard=True, empty_ok=True)
    suf = check_namespace(suffix or (), "suffix", wildcard=True, empty_ok=True)
    if max_depth is not None and max_depth < 1:
        raise Invalid(f"max_depth must be at least 1, got {max_depth}")
    _page(limit, offset)
    try:
        found = await _tenant_store(ctx, tenant).alist_namespaces(
            prefix=pre or None, suffix=suf or None, max_depth=max_depth, limit=limit, offset=offset
        )
    except InvalidNamespaceError as exc:
        raise Invalid(str(exc)) from None
    return [list(namespace) for namespace in found]
