"""The store across tenants, between graphs and the API, and over time (TTL refresh and the sweeper).

Tenants are the two API keys of the core fixtures. The ``memory`` fixture graph writes through a
``store`` parameter and reads through ``get_store()`` and, in a sync subgraph node, ``runtime.store``.
The core server sweeps expired items every 1.2 s (``store.ttl.sweep_interval_minutes`` 0.02).
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from typing import Any

import psycopg
from langgraph_sdk.client import LangGraphClient
from psycopg.rows import dict_row

from .conftest import Server


def root() -> str:
    return f"m{uuid.uuid4().hex[:12]}"


def expiry(server: Server, key: str) -> dict[str, Any] | None:
    """The row's expiry columns, read straight from the database (the API never shows them)."""
    with psycopg.connect(server.database_url, row_factory=dict_row) as conn:
        return conn.execute(
            "SELECT expires_at, ttl_minutes, expires_at - now() AS left FROM store WHERE key = %s", (key,)
        ).fetchone()


async def test_tenants_never_see_each_other_even_under_the_same_namespace(
    client: LangGraphClient, client_b: LangGraphClient
) -> None:
    ns = [root(), "shared"]
    await client.store.put_item(ns, "k", {"owner": "a"})
    assert await client_b.store.get_item(ns, "k") is None
    assert (await client_b.store.search_items(ns[:1]))["items"] == []
    assert (await client_b.store.list_namespaces(prefix=ns[:1]))["namespaces"] == []
    await client_b.store.delete_item(ns, "k")
    await client_b.store.put_item(ns, "k", {"owner": "b"})
    assert (await client.store.get_item(ns, "k"))["value"] == {"owner": "a"}
    assert (await client_b.store.get_item(ns, "k"))["value"] == {"owner": "b"}
    mine = (await client.store.search_items(ns[:1]))["items"]
    assert [(i["namespace"], i["value"]) for i in mine] == [(ns, {"owner": "a"})]
    every = (await client.store.list_namespaces())["namespaces"]
    assert ns in every and all(not label.startswith("~t~") for n in every for label in n)


async def test_memory_a_graph_writes_is_read_through_the_api_and_back(
    client: LangGraphClient, client_b: LangGraphClient
) -> None:
    ns = [root(), "user"]
    thread = await client.threads.create()
    out = await client.runs.wait(
        thread["thread_id"], "memory", input={"namespace": ns, "key": "fact", "value": {"likes": "tea"}}
    )
    assert out["store_type"] == "TenantStore"  # the server's store replaced the one compiled in
    assert out["seen"]["value"] == {"likes": "tea"} and out["seen"]["namespace"] == ns
    assert out["sync_seen"]["value"] == {"likes": "tea"}  # sync node in a subgraph, runtime.store
    assert out["namespaces"] == [ns]
    through_api = await client.store.get_item(ns, "fact")
    assert through_api["value"] == {"likes": "tea"}
    assert await client_b.store.get_item(ns, "fact") is None  # the run belonged to tenant a

    await client.store.put_item(ns, "from-api", {"likes": "coffee"})
    read = await client.runs.wait(None, "memory", input={"namespace": ns, "key": "from-api"})  # stateless run
    assert read["seen"]["value"] == {"likes": "coffee"} and read["sync_seen"]["value"] == {"likes": "coffee"}
    assert sorted(i["key"] for i in read["found"]) == ["fact", "from-api"]

    other = await client_b.runs.wait(None, "memory", input={"namespace": ns, "key": "from-api"})
    assert other["seen"] is None and other["found"] == [] and other["namespaces"] == []


async def test_graph_writes_honour_ttl_and_reads_refresh_it(client: LangGraphClient, server: Server) -> None:
    ns = [root()]
    key = f"graph-ttl-{uuid.uuid4().hex[:6]}"
    await client.runs.wait(None, "memory", input={"namespace": ns, "key": key, "value": {"v": 1}, "ttl": 30})
    row = expiry(server, key)
    assert row is not None and row["ttl_minutes"] == 30
    assert timedelta(minutes=29) < row["left"] <= timedelta(minutes=30)


async def test_ttl_default_none_and_refresh_on_read(client: LangGraphClient, server: Server) -> None:
    ns = [root()]
    forever, short = f"forever-{uuid.uuid4().hex[:6]}", f"short-{uuid.uuid4().hex[:6]}"
    await client.store.put_item(ns, forever, {"v": 0})  # no ttl and default_ttl null: never expires
    assert expiry(server, forever) == {"expires_at": None, "ttl_minutes": None, "left": None}
    await client.store.put_item(ns, short, {"v": 1}, ttl=10)
    row = expiry(server, short)
    assert row is not None and row["ttl_minutes"] == 10
    with psycopg.connect(server.database_url) as conn:  # pretend five minutes went by
        conn.execute("UPDATE store SET expires_at = now() + interval '5 minutes' WHERE key = %s", (short,))

    await client.store.get_item(ns, short, refresh_ttl=False)
    assert expiry(server, short)["left"] <= timedelta(minutes=5)  # type: ignore[index]
    await client.store.search_items(ns, refresh_ttl=False)
    assert expiry(server, short)["left"] <= timedelta(minutes=5)  # type: ignore[index]
    await client.store.get_item(ns, short, refresh_ttl=True)
    assert expiry(server, short)["left"] > timedelta(minutes=9)  # type: ignore[index]

    with psycopg.connect(server.database_url) as conn:
        conn.execute("UPDATE store SET expires_at = now() + interval '5 minutes' WHERE key = %s", (short,))
    await client.store.get_item(ns, short)  # refresh_on_read is true in the fixture project
    assert expiry(server, short)["left"] > timedelta(minutes=9)  # type: ignore[index]
    with psycopg.connect(server.database_url) as conn:
        conn.execute("UPDATE store SET expires_at = now() + interval '5 minutes' WHERE key = %s", (short,))
    await client.store.search_items(ns, refresh_ttl=True)
    assert expiry(server, short)["left"] > timedelta(minutes=9)  # type: ignore[index]

    await client.store.put_item(ns, short, {"v": 2}, ttl=None)  # an explicit null clears the expiry
    assert expiry(server, short)["expires_at"] is None  # type: ignore[index]


async def test_the_sweeper_deletes_expired_items_and_reads_hide_them_meanwhile(
    client: LangGraphClient, server: Server
) -> None:
    ns = [root()]
    old, kept = f"old-{uuid.uuid4().hex[:6]}", f"kept-{uuid.uuid4().hex[:6]}"
    await client.store.put_item(ns, old, {"v": 1}, ttl=1)
    await client.store.put_item(ns, kept, {"v": 2}, ttl=1)
    with psycopg.connect(server.database_url) as conn:
        conn.execute("UPDATE store SET expires_at = now() - interval '1 second' WHERE key = %s", (old,))
    assert await client.store.get_item(ns, old) is None  # expired: absent at once, swept or not
    assert [i["key"] for i in (await client.store.search_items(ns))["items"]] == [kept]
    deadline = asyncio.get_running_loop().time() + 15
    while expiry(server, old) is not None:
        assert asyncio.get_running_loop().time() < deadline, "the sweeper did not delete the expired row"
        await asyncio.sleep(0.2)
    assert expiry(server, kept) is not None
