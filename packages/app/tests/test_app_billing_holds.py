"""Issue 12, defect 6: no overdraft by concurrency. Preflight holds the run's estimate against the balance
minus the account's open holds, atomically; holds are released when runs end and expire when runs die.
Real Postgres; the HTTP-level proof (20 concurrent chats) is in test_app_api_chat.py."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from decimal import Decimal

import pytest

from cogni_ai_core import ExecutorType, SourceSystem, UsageFact
from cogni_app.billing import Accounts, CreditHolds, InsufficientCredits, Ledger, estimate_credits
from cogni_app.db import AppDatabase
from testsupport import fresh_database
from testsupport.app_db import open_migrated

pytestmark = pytest.mark.integration


@pytest.fixture
async def db() -> AsyncIterator[AppDatabase]:
    with fresh_database("cogni_app_holds") as url:
        async with open_migrated(url) as database:
            yield database


async def test_twenty_concurrent_holds_on_a_balance_for_three_grant_three(db: AppDatabase) -> None:
    account = await Accounts(db).create_account("acme", initial_credits=3 * 1000 + 500)
    holds = CreditHolds(db)

    async def take() -> bool:
        try:
            await holds.take(account.id, str(uuid.uuid4()), 1000)
        except InsufficientCredits as exc:
            assert exc.required == 1000 and exc.balance < 1000
            return False
        return True

    granted = await asyncio.gather(*(take() for _ in range(20)))
    assert granted.count(True) == 3


async def test_a_released_hold_frees_its_credits_and_a_stale_one_expires(db: AppDatabase) -> None:
    account = await Accounts(db).create_account("acme", initial_credits=1000)
    holds = CreditHolds(db, ttl_seconds=0.5)
    first = await holds.take(account.id, "run-1", 1000)
    with pytest.raises(InsufficientCredits):
        await holds.take(account.id, "run-2", 1000)
    await holds.release(first)
    await holds.release(first)  # idempotent
    killed = await holds.take(account.id, "run-2", 1000)  # its run dies without releasing it
    with pytest.raises(InsufficientCredits):
        await holds.take(account.id, "run-3", 1000)
    await asyncio.sleep(0.7)
    assert (await holds.take(account.id, "run-3", 1000)).amount == 1000
    assert killed.amount == 1000


async def test_an_account_in_debt_is_refused_even_for_a_free_model(db: AppDatabase) -> None:
    accounts = Accounts(db)
    account = await accounts.create_account("acme", initial_credits=0)
    await accounts.grant_credits(account.id, -5, reason="adjustment", reference="debt")
    with pytest.raises(InsufficientCredits):
        await CreditHolds(db).take(account.id, "run-1", 0)


async def test_the_estimate_grows_with_the_threads_context(db: AppDatabase) -> None:
    accounts = Accounts(db)
    account = await accounts.create_account("acme", initial_credits=10_000_000)
    vkey = await accounts.create_virtual_key(account.id)
    holds = CreditHolds(db)
    ledger = Ledger(db, markup=Decimal("2.0"), is_free_model=lambda _: False)
    assert await holds.thread_context_tokens(account.id, "conv-1") == 0
    hold = await holds.take(account.id, "run-1", 10, state_key="conv-1")
    fact = UsageFact(
        run_id="run-1", usage_unit_id="call-1", source=SourceSystem.LITELLM, executor_type=ExecutorType.INPROC,
        billing_account_id=account.id, virtual_key_id=vkey.id, graph_id="langgraph:chat", model="gpt-4o-mini",
        cost_usd=Decimal("0.001"), input_tokens=6000, output_tokens=2000,
    )  # fmt: skip
    await ledger.commit_usage_fact(fact, provenance="stream")
    await holds.release(hold)
    assert await holds.thread_context_tokens(account.id, "conv-1") == 8000
    assert await holds.thread_context_tokens(account.id, "conv-2") == 0
    fresh = estimate_credits("gpt-4o-mini", 20, is_free=False, markup=Decimal(2))
    on_thread = estimate_credits("gpt-4o-mini", 20, is_free=False, markup=Decimal(2), context_tokens=8000)
    assert on_thread - fresh == 8000 * 15 * 2 // 10  # 8000 tokens x $0.00000015 x markup 2, in credits
