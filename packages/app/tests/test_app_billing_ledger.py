"""The ledger against real Postgres: exactly-once charges, pricing, preflight, accounts."""

import asyncio
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import psycopg
import pytest
import structlog.testing
from prometheus_client import REGISTRY

from cogni_ai_core import ExecutorType, SourceSystem, UsageFact
from cogni_app.billing import (
    Accounts,
    InsufficientCredits,
    Ledger,
    UnknownAccount,
    estimate_credits,
)
from cogni_app.db import AppDatabase, applied_versions, migrate
from cogni_app.db.migrate import load_migrations
from testsupport import fresh_database
from testsupport.app_db import open_migrated

pytestmark = pytest.mark.integration

FREE = {"free-chat"}


def is_free(model: str | None) -> bool:
    return model in FREE


@pytest.fixture
async def db() -> AsyncIterator[AppDatabase]:
    with fresh_database("cogni_app_billing") as url:
        async with open_migrated(url, max_size=25) as database:
            yield database


@pytest.fixture
def ledger(db: AppDatabase) -> Ledger:
    return Ledger(db, markup=Decimal("2.0"), is_free_model=is_free)


@pytest.fixture
def accounts(db: AppDatabase) -> Accounts:
    return Accounts(db)


def fact(account: str, vkey: str, **overrides: Any) -> UsageFact:
    values: dict[str, Any] = {
        "run_id": "run-1",
        "attempt": 0,
        "usage_unit_id": "call-1",
        "source": SourceSystem.LITELLM,
        "executor_type": ExecutorType.INPROC,
        "billing_account_id": account,
        "virtual_key_id": vkey,
        "graph_id": "langgraph:chat",
        "model": "gpt-4o-mini",
        "input_tokens": 10,
        "output_tokens": 5,
        "cost_usd": Decimal("0.000004"),
    }
    values.update(overrides)
    return UsageFact(**values)


async def rows(db: AppDatabase, query: str, *params: object) -> list[dict[str, Any]]:
    async with db.pool.connection() as conn:
        cur = await conn.execute(query.encode(), params)
        return list(await cur.fetchall())


def metric(name: str, labels: dict[str, str] | None = None) -> float:
    return REGISTRY.get_sample_value(name, labels or {}) or 0.0


async def new_account(accounts: Accounts, credits: int = 0) -> tuple[str, str]:
    account = await accounts.create_account("acme", initial_credits=credits)
    vkey = await accounts.create_virtual_key(account.id)
    return account.id, vkey.id


async def test_migrations_are_versioned_and_idempotent() -> None:
    with fresh_database("cogni_app_billing") as url:
        assert await applied_versions(url) == []
        await asyncio.gather(migrate(url), migrate(url), migrate(url))
        await migrate(url)
        versions = [m.version for m in load_migrations()]  # every migration file, each applied once
        assert versions[:3] == [1, 2, 3] and await applied_versions(url) == versions
        with psycopg.connect(url) as conn:
            tables = {r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
        assert {
            "billing_accounts",
            "virtual_keys",
            "api_keys",
            "credit_ledger",
            "charge_receipts",
            "reconcile_cursors",
            "credit_holds",
        } <= tables


async def test_markup_arithmetic_charges_ceil_of_user_cost(ledger: Ledger, accounts: Accounts, db: AppDatabase) -> None:
    account, vkey = await new_account(accounts)
    before = metric("cogni_billing_receipts_total", {"provenance": "stream"})
    result = await ledger.commit_usage_fact(fact(account, vkey), provenance="stream", ingress_request_id="req-9")
    # $0.000004 x 2.0 = $0.000008 = 80 credits; the account had 0, so it is now at -80.
    assert (result.created, result.charged_credits, result.balance_after) == (True, 80, -80)
    assert await ledger.balance(account) == -80
    [receipt] = await ledger.receipts_for_run("run-1")
    assert receipt["response_cost_usd"] == Decimal("0.000008")
    assert receipt["provider_cost_usd"] == Decimal("0.000004")
    assert receipt["source_reference"] == "run-1/0/call-1"
    assert receipt["source_system"] == "litellm"
    assert receipt["litellm_call_id"] == "call-1"
    assert receipt["provenance"] == "stream"
    assert receipt["ingress_request_id"] == "req-9"
    assert (receipt["input_tokens"], receipt["output_tokens"], receipt["graph_id"]) == (10, 5, "langgraph:chat")
    [ledger_row] = await rows(db, "SELECT * FROM credit_ledger WHERE reason = 'charge_receipt'")
    assert (ledger_row["amount"], ledger_row["balance_after"], ledger_row["reference"]) == (-80, -80, receipt["id"])
    assert metric("cogni_billing_receipts_total", {"provenance": "stream"}) == before + 1


async def test_replay_returns_existing_receipt_and_changes_nothing(ledger: Ledger, accounts: Accounts) -> None:
    account, vkey = await new_account(accounts, credits=1_000)
    first = await ledger.commit_usage_fact(fact(account, vkey), provenance="stream")
    # The reconciler later sees the same call: same key, different provenance, changes nothing.
    replay = await ledger.commit_usage_fact(fact(account, vkey), provenance="reconcile")
    assert first.created and not replay.created
    assert replay.receipt_id == first.receipt_id
    assert replay.charged_credits == 80
    assert replay.balance_after == 920 == await ledger.balance(account)
    receipts = await ledger.receipts_for_run("run-1")
    assert [r["provenance"] for r in receipts] == ["stream"]
    # A new attempt of the same run is a different usage unit key and is charged.
    retry = await ledger.commit_usage_fact(fact(account, vkey, attempt=1), provenance="stream")
    assert retry.created and retry.balance_after == 840


async def test_concurrent_duplicates_charge_once(ledger: Ledger, accounts: Accounts, db: AppDatabase) -> None:
    account, vkey = await new_account(accounts, credits=10_000)
    the_fact = fact(account, vkey, cost_usd=Decimal("0.0001"))  # 2000 credits
    results = await asyncio.gather(*(ledger.commit_usage_fact(the_fact, provenance="stream") for _ in range(20)))
    assert sum(r.created for r in results) == 1
    assert {r.receipt_id for r in results} == {results[0].receipt_id}
    assert await ledger.balance(account) == 8_000
    assert len(await ledger.receipts_for_run("run-1")) == 1
    charges = await rows(db, "SELECT amount FROM credit_ledger WHERE reason = 'charge_receipt'")
    assert [r["amount"] for r in charges] == [-2_000]
    # The ledger sums to the balance: no charge was applied twice or lost.
    [total] = await rows(db, "SELECT sum(amount) AS s FROM credit_ledger WHERE billing_account_id = %s", account)
    assert total["s"] == 8_000


async def test_free_model_writes_zero_credit_receipt(ledger: Ledger, accounts: Accounts) -> None:
    account, vkey = await new_account(accounts, credits=500)
    result = await ledger.commit_usage_fact(
        fact(account, vkey, model="free-chat", cost_usd=Decimal("0.5")), provenance="stream"
    )
    assert (result.created, result.charged_credits, result.under_billed) == (True, 0, False)
    assert await ledger.balance(account) == 500
    [receipt] = await ledger.receipts_for_run("run-1")
    assert receipt["charged_credits"] == 0 and receipt["model"] == "free-chat"


async def test_free_is_judged_by_model_group_alias(ledger: Ledger, accounts: Accounts) -> None:
    """The stream reports the upstream model; the alias (model group) decides free-ness."""
    account, vkey = await new_account(accounts, credits=500)
    result = await ledger.commit_usage_fact(
        fact(account, vkey, model="llama-local", cost_usd=None, usage_raw={"modelGroup": "free-chat"}),
        provenance="stream",
    )
    assert (result.charged_credits, result.under_billed) == (0, False)


async def test_paid_model_without_cost_is_flagged_not_skipped(
    ledger: Ledger, accounts: Accounts, db: AppDatabase
) -> None:
    account, vkey = await new_account(accounts, credits=500)
    before = metric("cogni_billing_underbilled_calls_total")
    with structlog.testing.capture_logs() as logs:
        result = await ledger.commit_usage_fact(fact(account, vkey, cost_usd=None), provenance="stream")
    assert (result.created, result.charged_credits, result.under_billed) == (True, 0, True)
    [warning] = [entry for entry in logs if entry["log_level"] == "warning"]
    assert "under-billed" in warning["event"] and warning["source_reference"] == "run-1/0/call-1"
    assert metric("cogni_billing_underbilled_calls_total") == before + 1
    [receipt] = await ledger.receipts_for_run("run-1")
    assert receipt["under_billed"] is True and receipt["charged_credits"] == 0
    [alert] = await rows(db, "SELECT * FROM billing_alerts")
    assert alert["kind"] == "under_billed" and alert["receipt_id"] == receipt["id"]
    # A replay does not raise a second alert.
    await ledger.commit_usage_fact(fact(account, vkey, cost_usd=None), provenance="reconcile")
    assert metric("cogni_billing_underbilled_calls_total") == before + 1
    assert len(await rows(db, "SELECT * FROM billing_alerts")) == 1


async def test_charge_for_unknown_account_fails_loudly(ledger: Ledger) -> None:
    with pytest.raises(UnknownAccount):
        await ledger.commit_usage_fact(fact("no-such-account", "vk"), provenance="stream")


async def test_preflight_refuses_without_writing(ledger: Ledger, accounts: Accounts, db: AppDatabase) -> None:
    account, _ = await new_account(accounts, credits=1_000)
    estimate = estimate_credits("gpt-4o-mini", 4_000, is_free=False, markup=Decimal("2.0"))
    assert estimate > 1_000
    counts_before = await rows(
        db, "SELECT (SELECT count(*) FROM charge_receipts) AS r, (SELECT count(*) FROM credit_ledger) AS l"
    )
    with pytest.raises(InsufficientCredits) as refused:
        await ledger.preflight(account, estimate)
    assert (refused.value.required, refused.value.balance) == (estimate, 1_000)
    assert (
        await rows(db, "SELECT (SELECT count(*) FROM charge_receipts) AS r, (SELECT count(*) FROM credit_ledger) AS l")
        == counts_before
    )
    assert await ledger.balance(account) == 1_000
    await ledger.preflight(account, 1_000)  # exactly enough passes
    free_estimate = estimate_credits("free-chat", 4_000, is_free=True, markup=Decimal("2.0"))
    assert free_estimate == 0
    await ledger.preflight(account, free_estimate)
    with pytest.raises(UnknownAccount):
        await ledger.preflight("no-such-account", 1)


def test_estimate_is_documented_arithmetic() -> None:
    # gpt-4o-mini: ceil(4000/4)=1000 prompt tokens x $0.15/M + 1024 output tokens x $0.60/M
    # = $0.00015 + $0.0006144 = $0.0007644; x2 markup = $0.0015288 -> 15288 credits.
    assert estimate_credits("gpt-4o-mini", 4_000, is_free=False, markup=Decimal("2.0")) == 15_288
    # Unknown model: flat $0.01 / 1K tokens for (1 + 1024) tokens = $0.01025; x2 -> 205000 credits.
    assert estimate_credits("mystery", 1, is_free=False, markup=Decimal("2.0")) == 205_000
    assert estimate_credits("mystery", 10_000, is_free=True, markup=Decimal("2.0")) == 0


async def test_activity_sums_tokens_cost_and_credits_per_run(ledger: Ledger, accounts: Accounts) -> None:
    account, vkey = await new_account(accounts, credits=10_000)
    other, other_key = await new_account(accounts, credits=10_000)
    await ledger.commit_usage_fact(fact(account, vkey, usage_unit_id="a"), provenance="stream")
    await ledger.commit_usage_fact(
        fact(account, vkey, usage_unit_id="b", input_tokens=7, output_tokens=3), provenance="reconcile"
    )
    await ledger.commit_usage_fact(fact(account, vkey, run_id="run-2", usage_unit_id="c"), provenance="stream")
    await ledger.commit_usage_fact(fact(other, other_key, run_id="run-x", usage_unit_id="d"), provenance="stream")
    activity = await ledger.activity(account)
    assert [a["run_id"] for a in activity] == ["run-2", "run-1"]
    run1 = activity[1]
    assert (run1["llm_calls"], run1["input_tokens"], run1["output_tokens"], run1["credits"]) == (2, 17, 8, 160)
    assert run1["cost_usd"] == Decimal("0.000016")
    assert run1["models"] == ["gpt-4o-mini"] and run1["graph_id"] == "langgraph:chat"
    assert len(await ledger.activity(account, limit=1)) == 1


async def test_accounts_keys_and_grants(accounts: Accounts, ledger: Ledger, db: AppDatabase) -> None:
    account = await accounts.create_account("acme", initial_credits=100)
    assert (await accounts.get_account(account.id)).balance_credits == 100
    vkey = await accounts.create_virtual_key(account.id)
    plaintext = await accounts.create_api_key(account.id, vkey.id)
    principal = await accounts.resolve_api_key(plaintext)
    assert (principal.billing_account_id, principal.virtual_key_id) == (account.id, vkey.id)
    stored = await rows(db, "SELECT key_hash FROM api_keys")
    assert plaintext not in str(stored) and len(stored[0]["key_hash"]) == 64
    with pytest.raises(UnknownAccount):
        await accounts.resolve_api_key(plaintext + "x")
    assert await accounts.grant_credits(account.id, 50, reason="grant", reference="invoice-1") == 150
    assert await accounts.grant_credits(account.id, 50, reason="grant", reference="invoice-1") == 150  # replay
    assert await ledger.balance(account.id) == 150
    with pytest.raises(UnknownAccount):
        await accounts.get_account("nope")
    with pytest.raises(UnknownAccount):
        await accounts.create_virtual_key("nope")
    other = await accounts.create_account("other")
    with pytest.raises(UnknownAccount):
        await accounts.create_api_key(other.id, vkey.id)  # a key of another account
    assert await accounts.revoke_api_key(plaintext)
    with pytest.raises(UnknownAccount):
        await accounts.resolve_api_key(plaintext)
    counts = await accounts.delete_account_data(account.id)
    assert counts["billing_accounts"] == 1 and counts["credit_ledger"] == 2
    with pytest.raises(UnknownAccount):
        await accounts.get_account(account.id)
