"""Per-account LiteLLM keys against the real proxy: keys minted by the app (`LlmKeys`) and checked by LiteLLM's
custom-auth hook (`cogni_litellm_sink.keyauth`) reading the app's `llm_keys` table, the spend-log rows they
leave, revocation and rotation from the next call, per-key rate limits, and the reconciler's attribution."""

from __future__ import annotations

import asyncio
import hashlib
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import httpx
import pytest

from cogni_ai_core import compose_llm_key
from cogni_app.billing import Accounts, Ledger, LlmKeyDeriver, LlmKeys
from cogni_app.db import AppDatabase, migrate
from cogni_app.reconcile import Reconciler, SinkTableSource
from testsupport import fresh_database
from testsupport.llm_stack import LlmStack, running_llm_stack

pytestmark = [pytest.mark.proxy, pytest.mark.integration]
SECRET = "llm-key-secret-" + "x" * 32


@dataclass
class KeyStack:
    llm: LlmStack
    url: str


@pytest.fixture(scope="module")
def key_stack() -> Iterator[KeyStack]:
    """One database for the app's schema and the sink's table; the proxy checks keys against it."""
    with fresh_database("cogni_app_llm_keys") as url:
        asyncio.run(migrate(url))
        with running_llm_stack(sink_database_url=url, keys_database_url=url) as llm:
            yield KeyStack(llm, url)


@pytest.fixture
async def db(key_stack: KeyStack) -> AsyncIterator[AppDatabase]:
    database = AppDatabase(key_stack.url, min_size=1, max_size=4)
    await database.open()
    try:
        yield database
    finally:
        await database.close()


def call(stack: KeyStack, key: str, *, user: str, run_id: str = "run-x", stream: bool = False) -> httpx.Response:
    metadata = {"run_id": run_id, "attempt": 0, "graph_id": "langgraph:chat", "billing_account_id": user}
    body: dict[str, Any] = {"model": stack.llm.paid_model, "messages": [{"role": "user", "content": "Hello"}]}
    body["user"] = user
    if stream:
        body.update(stream=True, stream_options={"include_usage": True})
    return httpx.post(
        f"{stack.llm.litellm_base_url}/v1/chat/completions",
        headers={"Authorization": f"Bearer {key}", "x-litellm-spend-logs-metadata": json.dumps(metadata)},
        json=body,
        timeout=30,
    )


async def new_account(db: AppDatabase, credits: int = 10_000_000) -> str:
    return (await Accounts(db).create_account(f"acct-{uuid.uuid4().hex[:6]}", initial_credits=credits)).id


async def test_a_minted_key_calls_litellm_and_its_rows_carry_the_key_hash_and_account(
    key_stack: KeyStack, db: AppDatabase
) -> None:
    keys = LlmKeys(db, LlmKeyDeriver(SECRET))
    account = await new_account(db)
    record, plaintext = await keys.mint(account, rpm_limit=None, tpm_limit=None)
    assert plaintext.startswith("sk-cogni-") and await keys.key_for_run(account) == plaintext

    for stream in (False, True):
        response = call(key_stack, plaintext, user=account, stream=stream)
        assert response.status_code == 200, response.text
        row = key_stack.llm.wait_for_spend_row(response.headers["x-litellm-call-id"])
        assert (row["key_hash"], row["key_alias"], row["key_user_id"]) == (
            hashlib.sha256(plaintext.encode()).hexdigest(),
            f"llm-key:{record.id}",
            account,
        )
        assert row["spend"] > 0 and row["status"] == "success"
        assert plaintext not in json.dumps(row, default=str)  # hash and alias, never the key

    stored = await keys.list_for_account(account)
    assert [(k.id, k.revoked_at) for k in stored] == [(record.id, None)]
    assert plaintext[len("sk-cogni-") + 8 :] not in repr(stored)


async def test_revoked_and_rotated_away_keys_are_refused_from_the_next_call(
    key_stack: KeyStack, db: AppDatabase
) -> None:
    keys = LlmKeys(db, LlmKeyDeriver(SECRET))
    account = await new_account(db)
    first, first_key = await keys.mint(account, rpm_limit=None, tpm_limit=None)
    assert call(key_stack, first_key, user=account).status_code == 200

    second, second_key = await keys.rotate(first.id)
    assert second.replaces == first.id and second_key != first_key
    old = call(key_stack, first_key, user=account)
    assert old.status_code == 401 and "revoked" in old.json()["error"]["message"]
    assert call(key_stack, second_key, user=account).status_code == 200
    assert await keys.key_for_run(account) == second_key

    await keys.revoke(second.id)
    for stream in (False, True):
        refused = call(key_stack, second_key, user=account, stream=stream)
        assert refused.status_code == 401, refused.text
        assert refused.json()["error"]["type"] == "auth_error"
    assert call(key_stack, key_stack.llm.master_key, user=account).status_code == 200  # the app's key still works
    # the account's runs keep sending its newest key, which LiteLLM now refuses: revoked means no LLM calls
    assert await keys.key_for_run(account) == second_key


async def test_a_key_naming_another_account_or_unknown_is_refused(key_stack: KeyStack, db: AppDatabase) -> None:
    keys = LlmKeys(db, LlmKeyDeriver(SECRET))
    mine, other = await new_account(db), await new_account(db)
    _, key = await keys.mint(mine, rpm_limit=None, tpm_limit=None)
    secret = key.rsplit(".", 1)[1]
    for forged in (compose_llm_key(other, secret), compose_llm_key(mine, "not-the-secret"), "sk-cogni-!!.x"):
        response = call(key_stack, forged, user=other)
        assert response.status_code == 401, (forged, response.text)


async def test_the_keys_rate_limit_applies_per_key(key_stack: KeyStack, db: AppDatabase) -> None:
    keys = LlmKeys(db, LlmKeyDeriver(SECRET))
    limited, free = await new_account(db), await new_account(db)
    _, limited_key = await keys.mint(limited, rpm_limit=2, tpm_limit=None)
    _, free_key = await keys.mint(free, rpm_limit=None, tpm_limit=None)
    statuses = [call(key_stack, limited_key, user=limited).status_code for _ in range(3)]
    assert statuses == [200, 200, 429]
    assert call(key_stack, free_key, user=free).status_code == 200  # another key's budget is its own


async def test_the_keys_token_limit_applies_per_key(key_stack: KeyStack, db: AppDatabase) -> None:
    """`tpm_limit` from the hook's answer: LiteLLM counts each call's tokens against the key after the call and
    refuses the next call once the minute's count reached the limit (it cannot know a call's size before)."""
    keys = LlmKeys(db, LlmKeyDeriver(SECRET))
    limited, free = await new_account(db), await new_account(db)
    _, free_key = await keys.mint(free, rpm_limit=None, tpm_limit=None)
    probe = call(key_stack, free_key, user=free)
    assert probe.status_code == 200, probe.text
    per_call = int(probe.json()["usage"]["total_tokens"])  # every call below is the same request
    assert per_call > 0
    _, limited_key = await keys.mint(limited, rpm_limit=None, tpm_limit=2 * per_call)
    answers = [call(key_stack, limited_key, user=limited) for _ in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 429], [a.text for a in answers]
    assert "tpm" in answers[2].text.lower() or "token" in answers[2].text.lower(), answers[2].text
    assert all(call(key_stack, free_key, user=free).status_code == 200 for _ in range(3))  # no limit on this key


async def test_the_reconciler_bills_the_keys_account_whatever_user_the_request_names(
    key_stack: KeyStack, db: AppDatabase
) -> None:
    keys = LlmKeys(db, LlmKeyDeriver(SECRET))
    holder, victim = await new_account(db), await new_account(db)
    _, key = await keys.mint(holder, rpm_limit=None, tpm_limit=None)
    run_id = f"run-{uuid.uuid4().hex[:8]}"
    response = call(key_stack, key, user=victim, run_id=run_id)  # the key's holder names another account
    assert response.status_code == 200
    row = key_stack.llm.wait_for_spend_row(response.headers["x-litellm-call-id"])
    assert (row["end_user"], row["key_user_id"]) == (victim, holder)

    ledger = Ledger(db, markup=Decimal("2.0"), is_free_model=lambda model: False)
    reconciler = Reconciler(ledger, SinkTableSource(key_stack.url))
    assert await reconciler.reconcile_run(victim, run_id) == 0
    assert await reconciler.reconcile_run(holder, run_id) == 1
    receipts = await ledger.receipts_for_run(run_id)
    assert [r["billing_account_id"] for r in receipts] == [holder]
    assert await ledger.balance(victim) == 10_000_000


async def test_the_hooks_lookup_reads_the_table_read_only_and_outlives_a_dropped_connection() -> None:
    """The proxy's lookup (cogni_litellm_sink.keyauth.KeyLookup) against the app's table, without the proxy."""
    import psycopg

    from cogni_litellm_sink.keyauth import KeyLookup

    with fresh_database("cogni_app_llm_keys_lookup") as url:
        await migrate(url)
        database = AppDatabase(url, min_size=1, max_size=2)
        await database.open()
        try:
            keys = LlmKeys(database, LlmKeyDeriver(SECRET))
            account = await new_account(database)
            record, key = await keys.mint(account, rpm_limit=3, tpm_limit=None)
            lookup = KeyLookup(url)
            row = await lookup(key)
            assert row is not None and (row["id"], row["billing_account_id"], row["rpm_limit"]) == (
                record.id,
                account,
                3,
            )
            assert await lookup(key + "x") is None
            await keys.revoke(record.id)
            with psycopg.connect(url, autocommit=True) as admin:  # the database drops every other connection
                dropped = admin.execute(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                    " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                ).fetchone()
            assert dropped is not None and dropped[0] >= 1
            assert await lookup(key) is None  # revoked: seen at once, through a fresh connection
        finally:
            await database.close()
