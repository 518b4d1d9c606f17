"""Once against the real LiteLLM proxy + sink: the allowlist it serves, and receipts it reconciles."""

import json
import uuid
from collections.abc import Iterator
from decimal import Decimal

import httpx
import pytest

from cogni_ai_core import ExecutorType, LlmCallUsage, price_usage
from cogni_app.billing import Accounts, Ledger
from cogni_app.models import ModelAllowlist
from cogni_app.reconcile import Reconciler, SinkTableSource
from testsupport import fresh_database
from testsupport.app_db import open_migrated
from testsupport.llm_stack import LlmStack, running_llm_stack

pytestmark = [pytest.mark.proxy, pytest.mark.integration]


@pytest.fixture(scope="module")
def stack() -> Iterator[LlmStack]:
    with running_llm_stack() as llm_stack:
        yield llm_stack


def chat(stack: LlmStack, model: str, account: str, run_id: str) -> tuple[str, Decimal, dict[str, int]]:
    metadata = {
        "run_id": run_id,
        "attempt": 0,
        "graph_id": "langgraph:chat",
        "billing_account_id": account,
        "executor_type": "langgraph_server",
    }
    response = httpx.post(
        f"{stack.litellm_base_url}/v1/chat/completions",
        headers={"Authorization": f"Bearer {stack.master_key}", "x-litellm-spend-logs-metadata": json.dumps(metadata)},
        json={"model": model, "messages": [{"role": "user", "content": "Hello"}], "user": account},
        timeout=30,
    )
    response.raise_for_status()
    cost = Decimal(response.headers.get("x-litellm-response-cost") or 0)  # absent for the free alias
    return response.headers["x-litellm-call-id"], cost, response.json()["usage"]


async def test_allowlist_and_reconciliation_through_the_real_proxy(stack: LlmStack) -> None:
    allowlist = ModelAllowlist(stack.litellm_base_url, stack.master_key, start_timeout_seconds=30)
    await allowlist.start()
    try:
        models = {m.id: m for m in allowlist.models()}
        assert {stack.paid_model, stack.free_model} <= set(models)
        assert allowlist.default_model().id == stack.paid_model
        assert models[stack.free_model].is_free and not models[stack.paid_model].is_free
        assert models[stack.paid_model].display_name == "GPT-4o mini"
    finally:
        await allowlist.stop()

    with fresh_database("cogni_app_reconcile_proxy") as url:
        async with open_migrated(url) as db:
            accounts = Accounts(db)
            account = await accounts.create_account("acme", initial_credits=10_000_000)
            vkey = await accounts.create_virtual_key(account.id)
            ledger = Ledger(db, markup=Decimal("2.0"), is_free_model=allowlist.is_free)
            run_id = f"run-{uuid.uuid4().hex[:8]}"

            paid_call, paid_cost, usage = chat(stack, stack.paid_model, account.id, run_id)
            free_call, _, _ = chat(stack, stack.free_model, account.id, run_id)
            assert paid_cost > 0
            # The stream billed the paid call; the free call's usage event was "lost".
            streamed = LlmCallUsage(
                call_id=paid_call,
                model=stack.paid_model,
                cost_usd=paid_cost,
                input_tokens=usage["prompt_tokens"],
                output_tokens=usage["completion_tokens"],
            )
            fact = streamed.to_usage_fact(
                run_id=run_id,
                attempt=0,
                executor_type=ExecutorType.LANGGRAPH_SERVER,
                billing_account_id=account.id,
                virtual_key_id=vkey.id,
                graph_id="langgraph:chat",
            )
            await ledger.commit_usage_fact(fact, provenance="stream")
            stack.wait_for_spend_row(paid_call)
            stack.wait_for_spend_row(free_call)

            reconciler = Reconciler(ledger, SinkTableSource(stack.sink_database_url))
            assert await reconciler.reconcile_run(account.id, run_id) == 1
            assert await reconciler.reconcile_run(account.id, run_id) == 0
            receipts = {r["litellm_call_id"]: r for r in await ledger.receipts_for_run(run_id)}
            assert {k: r["provenance"] for k, r in receipts.items()} == {paid_call: "stream", free_call: "reconcile"}
            expected = price_usage(paid_cost, markup=Decimal("2.0"), is_free=False).credits
            assert receipts[paid_call]["charged_credits"] == expected
            assert (receipts[free_call]["charged_credits"], receipts[free_call]["under_billed"]) == (0, False)
            assert await ledger.balance(account.id) == 10_000_000 - expected
