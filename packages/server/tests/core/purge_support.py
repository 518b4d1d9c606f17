"""What the tenant purge tests look at: the tables from the database catalogue, a tenant's rows in
each (found by the test's own rules, not the purge's SQL), its Redis keys, and data made through the
official client."""

from __future__ import annotations

import base64
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from langgraph_sdk.client import LangGraphClient

from cogni_server.storage.purge import OTHER_TABLES, TENANT_TABLES

PURGE_PROJECT = Path(__file__).resolve().parent.parent / "fixtures" / "project" / "purge.json"
OPERATOR_TOKEN = "purge-test-operator-token"
OPTIONAL_TABLES = {"store_vectors", "vector_migrations"}  # only with store.index in langgraph.json
HI = {"messages": [{"role": "user", "content": "hi"}]}

CATALOGUE = (
    "SELECT table_schema, table_name FROM information_schema.tables WHERE table_type = 'BASE TABLE'"
    " AND table_schema NOT IN ('pg_catalog', 'information_schema') ORDER BY table_name"
)


def server_tables(conn: psycopg.Connection[Any]) -> set[str]:
    """Every table of the server's database, from the catalogue; fails on one the purge does not know."""
    rows = conn.execute(CATALOGUE).fetchall()
    schemas = {r[0] for r in rows}
    assert schemas == {"public"}, f"tables outside the public schema: {schemas}"
    tables = {r[1] for r in rows}
    unknown = tables - set(TENANT_TABLES) - set(OTHER_TABLES)
    assert not unknown, (
        f"table(s) {sorted(unknown)} are not known to the tenant purge: add each to storage/purge.py"
        " (TENANT_TABLES with its delete, or OTHER_TABLES saying why it holds no tenant data)"
    )
    missing = set(TENANT_TABLES) - tables - OPTIONAL_TABLES
    assert not missing, f"the purge knows tables the database does not have: {sorted(missing)}"
    return tables


def store_label(tenant: str) -> str:
    return "~t~" + base64.urlsafe_b64encode(tenant.encode()).decode().rstrip("=")


@dataclass
class Known:
    """The ids of a tenant's things, taken before the purge (rows found through them afterwards
    would be rows the purge left)."""

    tenant: str
    thread_ids: set[str] = field(default_factory=set)
    assistant_ids: set[str] = field(default_factory=set)
    run_ids: set[str] = field(default_factory=set)

    def refresh(self, conn: psycopg.Connection[Any]) -> Known:
        self.thread_ids |= {
            str(r[0]) for r in conn.execute("SELECT thread_id FROM threads WHERE owner = %s", (self.tenant,))
        }
        self.assistant_ids |= {
            str(r[0]) for r in conn.execute("SELECT assistant_id FROM assistants WHERE owner = %s", (self.tenant,))
        }
        self.run_ids |= {str(r[0]) for r in conn.execute("SELECT run_id FROM runs WHERE owner = %s", (self.tenant,))}
        return self


def tenant_rows(conn: psycopg.Connection[Any], known: Known) -> dict[str, int]:
    """Rows of the tenant in every table of the catalogue that holds tenant data."""
    tables = server_tables(conn)
    threads, label = sorted(known.thread_ids), store_label(known.tenant)
    by_store = ("prefix = %s OR prefix LIKE %s", (label, label + ".%"))
    rules: dict[str, tuple[str, tuple[Any, ...]]] = {
        "threads": ("owner = %s OR thread_id::text = ANY(%s)", (known.tenant, threads)),
        "runs": ("owner = %s OR thread_id::text = ANY(%s)", (known.tenant, threads)),
        "assistants": ("owner = %s", (known.tenant,)),
        "assistant_versions": ("assistant_id::text = ANY(%s)", (sorted(known.assistant_ids),)),
        "crons": ("owner = %s", (known.tenant,)),
        "webhook_outbox": ("owner = %s OR thread_id::text = ANY(%s)", (known.tenant, threads)),
        "checkpoints": ("thread_id = ANY(%s)", (threads,)),
        "checkpoint_blobs": ("thread_id = ANY(%s)", (threads,)),
        "checkpoint_writes": ("thread_id = ANY(%s)", (threads,)),
        "store": by_store,
        "store_vectors": by_store,
    }
    assert set(rules) == set(TENANT_TABLES), "the test's rules must cover every table with tenant data"
    counts: dict[str, int] = {}
    for table in sorted(tables & set(TENANT_TABLES)):
        where, params = rules[table]
        row = conn.execute(f"SELECT count(*) FROM {table} WHERE {where}", params).fetchone()
        counts[table] = int(row[0]) if row else 0
    return counts


def redis_keys_of(redis_url: str, prefix: str, known: Known) -> list[str]:
    """Keys under the prefix that name one of the tenant's threads or runs."""
    import redis

    client = redis.Redis.from_url(redis_url)
    try:
        ids = known.thread_ids | known.run_ids
        found = []
        for raw in client.scan_iter(match=f"{prefix}:*", count=1000):
            key = raw.decode()
            if any(i in key for i in ids):
                found.append(key)
        return sorted(found)
    finally:
        client.close()


async def seed_tenant(client: LangGraphClient, tag: str, webhook: str) -> dict[str, Any]:
    """A tenant's typical data, all through the official client: an assistant with two versions,
    threads with finished runs (checkpoints, run and thread streams, thread event log), a run that
    wrote to the store from its graph, a store item, a thread cron and a stateless cron, and a run
    with a webhook (an outbox row)."""
    assistant = await client.assistants.create("echo", name=f"{tag}-assistant", metadata={"tag": tag})
    await client.assistants.update(assistant["assistant_id"], metadata={"tag": tag, "v": 2})
    thread = await client.threads.create(metadata={"tag": tag})
    await client.runs.wait(thread["thread_id"], assistant["assistant_id"], input=HI)
    await client.runs.wait(thread["thread_id"], "echo", input=HI, webhook=webhook)
    memory_thread = await client.threads.create()
    memory_input = {"namespace": ["notes", tag], "key": "from-graph", "value": {"tag": tag}}
    await client.runs.wait(memory_thread["thread_id"], "memory", input=memory_input)
    await client.store.put_item(["profile"], "name", {"name": tag})
    await client.crons.create_for_thread(thread["thread_id"], "echo", schedule="0 0 1 1 *", input=HI)
    await client.crons.create("echo", schedule="0 0 1 1 *", input=HI)
    return {"assistant": assistant, "thread": thread, "memory_thread": memory_thread}


def wait_for(predicate: Any, what: str, limit: float = 30.0) -> Any:
    deadline = time.monotonic() + limit
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {limit}s waiting for {what}")
        time.sleep(0.1)
