"""A user's data deletion, the app's side (real Postgres): every table of the app's schema is accounted
for, the in-process conversations and keys of the account go while another account keeps its own, the
spend log keeps its money and loses its content so that a reconcile afterwards bills nothing twice, a job
interrupted by a crash is finished at the next start, and a step that fails leaves the job in progress
with the error and the later steps not run."""

from __future__ import annotations

import asyncio
import operator
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Annotated, Any

import psycopg
import pytest
from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
from langgraph.graph import StateGraph
from psycopg.rows import dict_row
from typing_extensions import TypedDict

from cogni_app.billing import Accounts, Ledger, UnknownAccount, UnknownApiKey
from cogni_app.config import AppSettings
from cogni_app.db import AppDatabase
from cogni_app.deletion import DeletionJobs, ServerPurgeClient, SpendLogScrubber
from cogni_app.deletion.app_data import ALL_TABLES
from cogni_app.reconcile import Reconciler, SinkTableSource
from cogni_app.services import DeletionPolicy, DeletionService, DeletionUnavailable, UnknownDeletion
from cogni_app.wiring import build_deletion
from cogni_litellm_sink.mapping import SpendRow
from cogni_litellm_sink.schema import UPSERT
from testsupport import free_port

pytestmark = pytest.mark.integration


class Chat(TypedDict):
    messages: Annotated[list[str], operator.add]


@dataclass
class World:
    url: str
    db: AppDatabase
    accounts: Accounts
    ledger: Ledger
    saver: AsyncPostgresSaver


@pytest.fixture
async def world(sink_and_app_db: tuple[str, AppDatabase]) -> AsyncIterator[World]:
    """App schema, sink table and the in-process checkpointer's tables, all in one database."""
    url, db = sink_and_app_db
    async with await psycopg.AsyncConnection.connect(url, autocommit=True, row_factory=dict_row) as conn:
        await AsyncPostgresSaver(conn).setup()  # type: ignore[arg-type]
    ledger = Ledger(db, markup=Decimal("2.0"), is_free_model=lambda m: False)
    yield World(url, db, Accounts(db), ledger, AsyncPostgresSaver(db.pool))  # type: ignore[arg-type]


async def converse(world: World, account: str, thread: str, text: str) -> None:
    """One in-process conversation turn, checkpointed as the app's in-process executor does."""
    graph = StateGraph(Chat)
    graph.add_node("echo", lambda state: {"messages": [f"echo: {state['messages'][-1]}"]})
    graph.set_entry_point("echo")
    compiled = graph.compile(checkpointer=world.saver)
    config: Any = {"configurable": {"thread_id": thread, "billingAccountId": account, "user": account}}
    await compiled.ainvoke({"messages": [text]}, config)


def spend_row(call_id: str, account: str, run_id: str) -> SpendRow:
    ended = datetime.now(UTC) - timedelta(seconds=5)
    return SpendRow(
        call_id=call_id,
        provider_response_id=f"chatcmpl-{call_id}",
        end_user=account,
        spend=Decimal("0.0021"),
        prompt_tokens=10,
        completion_tokens=20,
        total_tokens=30,
        model="gpt-4o-mini",
        model_group="paid-chat",
        status="success",
        error_code=None,
        spend_logs_metadata={
            "run_id": run_id,
            "attempt": 0,
            "graph_id": "langgraph:chat",
            "billing_account_id": account,
            "executor_type": "inproc",
            "thread_id": f"thread-of-{account}",
            "request_id": f"secret-request-{account}",
            "trace_id": "trace-words",
        },
        request_tags=["User-Agent: words"],
        start_time=ended - timedelta(seconds=1),
        end_time=ended,
    )


def stored(words: str, text: str) -> bool:
    """In a table's JSON text: as text, or inside a bytea column (JSON shows it as hex: checkpoint blobs)."""
    return words in text or words.encode().hex() in text


async def text_of_tables(url: str) -> dict[str, str]:
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        cur = await conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        tables = [str(r[0]) for r in await cur.fetchall()]
        out: dict[str, str] = {}
        for table in tables:
            cur = await conn.execute(f"SELECT coalesce(json_agg(t)::text, '') FROM {table} t")  # type: ignore[arg-type]
            row = await cur.fetchone()
            out[table] = str(row[0]) if row else ""
        return out


def service(world: World, *, server: ServerPurgeClient | None = None) -> DeletionService:
    return DeletionService(
        jobs=DeletionJobs(world.db),
        server=server,
        spend_log=SpendLogScrubber(world.url),
        policy=DeletionPolicy(retry_seconds=0.1),
    )


async def test_every_app_table_is_accounted_for(world: World) -> None:
    catalogue = set((await text_of_tables(world.url)).keys()) - {"litellm_spend_logs"}  # the sink's, not the app's
    assert catalogue - set(ALL_TABLES) == set(), "a table of the app's schema is not in deletion/app_data.py"


async def test_deletion_removes_the_accounts_conversations_keys_and_spend_log_content_only(world: World) -> None:
    alice = await world.accounts.create_account("Alice Example", initial_credits=1_000_000)
    bob = await world.accounts.create_account("Bob Example", initial_credits=1_000_000)
    keys = {}
    for account in (alice, bob):
        vkey = await world.accounts.create_virtual_key(account.id, label=f"{account.name} laptop")
        keys[account.id] = await world.accounts.create_api_key(account.id, vkey.id)
        await converse(world, account.id, f"thread-of-{account.id}", f"the diary of {account.name}")
        await converse(world, account.id, f"thread-of-{account.id}", f"more from {account.name}")
    with psycopg.connect(world.url, autocommit=True) as conn:
        for account in (alice, bob):
            for n in range(2):
                conn.execute(UPSERT, spend_row(f"{account.id}-call-{n}", account.id, f"run-{account.id}").values())
    reconciler = Reconciler(world.ledger, SinkTableSource(world.url))
    assert await reconciler.reconcile_run(alice.id, f"run-{alice.id}") == 2
    balance = await world.ledger.balance(alice.id)
    assert balance < 1_000_000

    deletion = service(world)
    started = await deletion.request(alice.id, requested_by="operator")
    assert started.status_token is not None
    with pytest.raises(UnknownApiKey):  # revoked at the request, before the job runs
        await world.accounts.resolve_api_key(keys[alice.id])
    await deletion.wait(alice.id)
    record = await deletion.status(alice.id)
    assert record.status == "done" and record.requested_by == "operator"
    assert record.steps["server"]["status"] == "skipped"
    assert record.steps["app"]["counts"]["api_keys"] == 1 and record.steps["app"]["counts"]["virtual_keys"] == 1
    assert record.steps["app"]["counts"]["checkpoints"] >= 2 and record.steps["app"]["counts"]["checkpoint_blobs"] >= 1
    assert record.steps["spend_log"]["counts"] == {"litellm_spend_logs": 2}
    assert (await deletion.status_by_token(started.status_token)) == record

    tables = await text_of_tables(world.url)
    for words in ("Alice Example", "diary of Alice", f"thread-of-{alice.id}", f"secret-request-{alice.id}"):
        assert not [t for t, text in tables.items() if stored(words, text)], f"{words!r} is still stored"
    for words in ("Bob Example", "diary of Bob", f"thread-of-{bob.id}", f"secret-request-{bob.id}"):
        assert [t for t, text in tables.items() if stored(words, text)], f"bob's {words!r} went too"
    assert (await world.accounts.resolve_api_key(keys[bob.id])).billing_account_id == bob.id
    with psycopg.connect(world.url, autocommit=True, row_factory=dict_row) as conn:
        rows = conn.execute("SELECT * FROM litellm_spend_logs WHERE end_user = %s", (alice.id,)).fetchall()
    assert len(rows) == 2
    for row in rows:
        assert row["spend"] == Decimal("0.0021") and row["total_tokens"] == 30 and row["provider_response_id"] is None
        assert row["request_tags"] == [] and row["spend_logs_metadata"] == {
            "run_id": f"run-{alice.id}",
            "attempt": 0,
            "graph_id": "langgraph:chat",
            "billing_account_id": alice.id,
            "executor_type": "inproc",
        }

    # a reconcile after the deletion bills nothing twice; the balance and the account row stay
    assert await reconciler.reconcile_run(alice.id, f"run-{alice.id}") == 0
    assert await world.ledger.balance(alice.id) == balance

    # asking again once done runs the job again: nothing more to delete, the counts stay
    again = await deletion.request(alice.id, requested_by="operator")
    assert again.status_token is None
    await deletion.wait(alice.id)
    rerun = await deletion.status(alice.id)
    assert rerun.status == "done" and rerun.steps["app"]["counts"] == record.steps["app"]["counts"]
    await deletion.aclose()
    with pytest.raises(UnknownAccount):
        await service(world).request("no-such-account", requested_by="operator")


async def test_a_job_interrupted_by_a_crash_is_finished_at_the_next_start(world: World) -> None:
    account = await world.accounts.create_account("Carol", initial_credits=10)
    vkey = await world.accounts.create_virtual_key(account.id)
    await world.accounts.create_api_key(account.id, vkey.id)
    await DeletionJobs(world.db).open_job(account.id, "user")  # the process died right after the request
    assert (await DeletionJobs(world.db).get(account.id)).status == "in_progress"  # type: ignore[union-attr]

    restarted = service(world)
    assert await restarted.resume_all() == 1
    await restarted.wait(account.id)
    record = await restarted.status(account.id)
    assert record.status == "done" and record.steps["app"]["counts"]["api_keys"] == 1
    await restarted.aclose()


async def test_a_failing_step_leaves_the_job_in_progress_with_its_error_and_later_steps_undone(world: World) -> None:
    account = await world.accounts.create_account("Dave", initial_credits=10)
    vkey = await world.accounts.create_virtual_key(account.id, label="dave's phone")
    await world.accounts.create_api_key(account.id, vkey.id)
    unreachable = ServerPurgeClient(f"http://127.0.0.1:{free_port()}", "operator-token", timeout_seconds=2)
    deletion = service(world, server=unreachable)
    await deletion.request(account.id, requested_by="user")
    jobs = DeletionJobs(world.db)
    for _ in range(100):
        record = await jobs.get(account.id)
        assert record is not None
        if record.last_error:
            break
        await asyncio.sleep(0.05)
    assert record.status == "in_progress" and "unreachable" in (record.last_error or "")
    assert record.steps["app"]["status"] == "pending"  # the app's rows wait for the server's purge
    assert "dave's phone" in (await text_of_tables(world.url))["virtual_keys"]
    await deletion.aclose()


async def test_deletion_is_refused_when_the_server_cannot_be_purged(world: World) -> None:
    """Graphs run on a server but the app has no operator token: no job opens, the keys keep working."""
    settings = AppSettings.model_validate(
        {"database_url": world.url, "cogni_jwt_secret": "s" * 40, "cogni_executor": "server"}
    )
    deletion = build_deletion(settings, world.db)
    account = await world.accounts.create_account("Erin", initial_credits=10)
    vkey = await world.accounts.create_virtual_key(account.id)
    key = await world.accounts.create_api_key(account.id, vkey.id)
    with pytest.raises(DeletionUnavailable, match="COGNI_SERVER_OPERATOR_TOKEN"):
        await deletion.request(account.id, requested_by="user")
    assert await DeletionJobs(world.db).get(account.id) is None
    assert (await world.accounts.resolve_api_key(key)).billing_account_id == account.id
    with pytest.raises(UnknownDeletion):
        await deletion.status(account.id)
    await deletion.aclose()
