"""The store's storage layer against a real Postgres: tenant views, numeric filters, TTL rules.

The tenant view is checked by equivalence: the same items written through ``TenantStore`` and into a
plain store on another database must list and search identically, for many parameter combinations
(prefixes and suffixes with ``*``, ``max_depth``, pages), while never showing the hidden label.
"""

from __future__ import annotations

import asyncio
import itertools
import random
from collections.abc import AsyncIterator
from typing import Any

import pytest
from langgraph._internal._constants import CONFIG_KEY_RUNTIME
from langgraph.store.base import InvalidNamespaceError
from psycopg_pool import AsyncConnectionPool

from cogni_server.storage.pool import open_pool
from cogni_server.storage.store import StoreBackend, TenantStore, open_store, tenant_label
from testsupport import fresh_database

pytestmark = pytest.mark.integration
TTL = {"refresh_on_read": True, "default_ttl": None, "sweep_interval_minutes": 5, "omit_expired": True}


@pytest.fixture
async def backend(pool: AsyncConnectionPool[Any]) -> AsyncIterator[StoreBackend]:
    backend = await open_store(pool, index=None, ttl=TTL)
    async with pool.connection() as conn:
        await conn.execute("DELETE FROM store")
    try:
        yield backend
    finally:
        await backend.close()


@pytest.fixture
async def plain() -> AsyncIterator[Any]:
    """A store on a second database, written without any tenant label: the reference answers."""
    with fresh_database("cogni_store_plain") as url:
        pool = await open_pool(url, min_size=1, max_size=4, connect_timeout=5)
        backend = await open_store(pool, index=None, ttl=TTL)
        try:
            yield backend.store
        finally:
            await backend.close()
            await pool.close()


def test_the_private_runtime_key_is_where_the_executor_expects_it() -> None:
    assert CONFIG_KEY_RUNTIME == "__pregel_runtime"  # runs/executor.py injects the tenant's store there


def test_tenant_labels_are_distinct_and_never_contain_a_separator() -> None:
    labels = {tenant_label(t) for t in ("a", "b", "tenant.A", "", "ü/.~", "a" * 300)}
    assert len(labels) == 6
    assert all(label.startswith("~t~") and "." not in label and label for label in labels)


async def test_views_match_a_plain_store_and_never_show_the_label(backend: StoreBackend, plain: Any) -> None:
    a, b = backend.for_tenant("tenant.A"), backend.for_tenant("tenant-B")
    labels = ["a", "b", "c", "user_1", "userX1", "docs", "docsx"]
    rnd = random.Random(7)
    namespaces = sorted({tuple(rnd.choice(labels) for _ in range(rnd.randint(1, 4))) for _ in range(30)})
    for ns in namespaces:
        for key in ("k1", "k2"):
            await a.aput(ns, key, {"v": key, "ns": list(ns)})
            await b.aput(ns, key, {"v": "B"})
            await plain.aput(ns, key, {"v": key, "ns": list(ns)})
    everything = await a.asearch((), limit=1000)
    assert len(everything) == 2 * len(namespaces)
    assert all(item.value["v"] != "B" and not item.namespace[0].startswith("~t~") for item in everything)

    prefixes: list[tuple[str, ...]] = [(), ("a",), ("a", "*"), ("*",), ("*", "b"), ("docs",), ("doc",), ("user_1",)]
    suffixes: list[tuple[str, ...]] = [(), ("a",), ("*",), ("*", "a"), ("b", "c"), ("*", "*", "*", "*", "*")]
    combos = itertools.product(prefixes, suffixes, [None, 1, 2, 3], [(100, 0), (3, 2)])
    for prefix, suffix, depth, (limit, offset) in combos:
        options: dict[str, Any] = {"prefix": prefix or None, "suffix": suffix or None, "max_depth": depth}
        got = await a.alist_namespaces(**options, limit=limit, offset=offset)
        want = await plain.alist_namespaces(**options, limit=limit, offset=offset)
        assert got == want, (prefix, suffix, depth, limit, offset)

    for prefix, (limit, offset) in itertools.product([(), ("a",), ("docs",), ("doc",), ("user_1",)], [(10, 0), (3, 1)]):
        got = await a.asearch(prefix, filter={"v": "k1"}, limit=limit, offset=offset)
        want = await plain.asearch(prefix, filter={"v": "k1"}, limit=limit, offset=offset)
        assert sorted((i.namespace, i.key) for i in got) == sorted((i.namespace, i.key) for i in want)


async def test_identical_namespaces_of_two_tenants_stay_apart(backend: StoreBackend) -> None:
    a, b = backend.for_tenant("a"), backend.for_tenant("b")
    await a.aput(("shared",), "k", {"owner": "a"})
    assert await b.aget(("shared",), "k") is None
    assert await b.asearch(("shared",)) == []
    assert await b.alist_namespaces() == []
    await b.adelete(("shared",), "k")  # deleting "the same" item as b leaves a's alone
    item = await a.aget(("shared",), "k")
    assert item is not None and item.namespace == ("shared",) and item.value == {"owner": "a"}
    # a suffix starting with '*' never matches through the hidden label: ("x",) is one label deep
    await a.aput(("x",), "k", {})
    assert await a.alist_namespaces(suffix=("*", "x")) == []
    assert await a.alist_namespaces(suffix=("x",)) == [("x",)]


async def test_reserved_and_malformed_labels_are_refused(backend: StoreBackend) -> None:
    view = backend.for_tenant("a")
    marker = tenant_label("b")
    for call in (
        view.aput((marker,), "k", {}),
        view.aget((marker, "x"), "k"),
        view.asearch((marker,)),
        view.alist_namespaces(prefix=(marker,)),
        view.alist_namespaces(suffix=("*", marker)),
        view.aput(("a.b",), "k", {}),
    ):
        with pytest.raises(InvalidNamespaceError):
            await call


async def test_range_filters_compare_numbers_as_numbers_and_strings_as_text(backend: StoreBackend) -> None:
    view = backend.for_tenant("a")
    for n in (9, 10, 100):
        await view.aput(("nums",), f"n{n}", {"n": n, "s": str(n)})
    await view.aput(("nums",), "text", {"n": "10"})

    async def keys(condition: dict[str, Any]) -> list[str]:
        return sorted(item.key for item in await view.asearch(("nums",), filter=condition))

    assert await keys({"n": {"$gt": 9}}) == ["n10", "n100"]
    assert await keys({"n": {"$gte": 10, "$lt": 100}}) == ["n10"]
    assert await keys({"n": {"$lte": 9.5}}) == ["n9"]
    assert await keys({"s": {"$gt": "5"}}) == ["n9"]  # strings keep text order ("10" < "5" < "9")
    assert await keys({"n": 10}) == ["n10"]
    assert await keys({"n": {"$ne": 10}}) == ["n100", "n9", "text"]


async def test_expired_items_are_hidden_before_the_sweep_and_gone_after(
    backend: StoreBackend, pool: AsyncConnectionPool[Any]
) -> None:
    view = backend.for_tenant("a")
    await view.aput(("ttl",), "old", {"v": 1}, ttl=1)
    await view.aput(("ttl",), "new", {"v": 2}, ttl=1)
    await view.aput(("ttl",), "forever", {"v": 3})
    async with pool.connection() as conn:
        await conn.execute("UPDATE store SET expires_at = now() - interval '1 second' WHERE key = 'old'")
    assert await view.aget(("ttl",), "old") is None
    assert sorted(i.key for i in await view.asearch(("ttl",))) == ["forever", "new"]
    assert await backend.sweep() == 1
    async with pool.connection() as conn:
        rows = await (await conn.execute("SELECT key FROM store WHERE key IN ('old', 'new') ORDER BY key")).fetchall()
    assert [r["key"] for r in rows] == ["new"]


async def test_sync_calls_from_a_worker_thread_reach_the_same_items(backend: StoreBackend) -> None:
    view: TenantStore = backend.for_tenant("a")
    await view.aput(("sync",), "k", {"v": 1})

    def in_thread() -> Any:
        view.put(("sync",), "k2", {"v": 2})
        return view.get(("sync",), "k")

    item = await asyncio.to_thread(in_thread)
    assert item is not None and item.value == {"v": 1}
    assert (await view.aget(("sync",), "k2")) is not None
    with pytest.raises(asyncio.InvalidStateError):
        view.get(("sync",), "k")  # on the event loop itself: refused instead of deadlocking
