"""LiteLLMSpendLogsApiSource against a local fake of LiteLLM's `GET /spend/logs` (database mode).

The fake keeps LiteLLM's contract as far as this source depends on it: master-key auth,
`start_date`/`end_date` as `YYYY-MM-DD` compared with `startTime`, `summary` defaulting to true
(aggregated per day) and `summary=false` for individual rows, rows shaped like `LiteLLM_SpendLogs`
with `metadata` carrying `spend_logs_metadata`.
"""

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from cogni_app.billing import Accounts, Ledger
from cogni_app.reconcile import LiteLLMSpendLogsApiSource, Reconciler
from testsupport import fresh_database, serve_asgi
from testsupport.app_db import open_migrated

MASTER_KEY = "sk-fake-master"


@dataclass
class FakeSpendLogsApi:
    rows: list[dict[str, Any]] = field(default_factory=list)
    queries: list[dict[str, str]] = field(default_factory=list)

    async def spend_logs(self, request: Request) -> JSONResponse:
        if request.headers.get("authorization") != f"Bearer {MASTER_KEY}":
            return JSONResponse({"error": {"message": "Authentication Error", "code": "401"}}, status_code=401)
        query = dict(request.query_params)
        self.queries.append(query)
        rows = self.rows
        if "request_id" in query:
            rows = [r for r in rows if r["request_id"] == query["request_id"]]
        if "start_date" in query and "end_date" in query:
            try:
                start = datetime.strptime(query["start_date"], "%Y-%m-%d").replace(tzinfo=UTC)
                end = datetime.strptime(query["end_date"], "%Y-%m-%d").replace(tzinfo=UTC)
            except ValueError as exc:
                return JSONResponse({"error": {"message": str(exc)}}, status_code=500)
            rows = [r for r in rows if start <= datetime.fromisoformat(r["startTime"]) <= end]
            if query.get("summary", "true").lower() != "false":
                days: dict[str, dict[str, Any]] = {}
                for r in rows:
                    day = days.setdefault(r["startTime"][:10], {"startTime": r["startTime"][:10], "spend": 0.0})
                    day["spend"] += r["spend"]
                return JSONResponse(list(days.values()))
        return JSONResponse(rows)


def api_row(call_id: str, end_user: str | None, run_id: str, **overrides: Any) -> dict[str, Any]:
    ended = datetime.now(UTC) - timedelta(seconds=2)
    row: dict[str, Any] = {
        "request_id": call_id,
        "call_type": "acompletion",
        "api_key": "88dc28d0f030c55ed4ab77ed8faf098196cb1c05df778539800c9f1243fe6b4b",
        "spend": 0.000004,
        "total_tokens": 20,
        "prompt_tokens": 12,
        "completion_tokens": 8,
        "startTime": (ended - timedelta(seconds=1)).isoformat(),
        "endTime": ended.isoformat(),
        "completionStartTime": ended.isoformat(),
        "model": "gpt-4o-mini-2024-07-18",
        "model_id": "deployment-1",
        "model_group": "gpt-4o-mini",
        "custom_llm_provider": "openai",
        "api_base": "http://127.0.0.1:4010/v1",
        "user": "",
        "end_user": end_user,
        "team_id": "",
        "status": "success",
        "metadata": {
            "user_api_key": "88dc28d0f030c55ed4ab77ed8faf098196cb1c05df778539800c9f1243fe6b4b",
            "spend_logs_metadata": {
                "run_id": run_id,
                "attempt": 1,
                "graph_id": "langgraph:poet",
                "billing_account_id": end_user,
                "executor_type": "inproc",
            },
            "additional_usage_values": {},
        },
        "cache_hit": "False",
        "request_tags": [],
        "messages": {},
        "response": {},
    }
    row.update(overrides)
    return row


@pytest.fixture
def fake() -> Iterator[tuple[FakeSpendLogsApi, str]]:
    state = FakeSpendLogsApi()
    with serve_asgi(Starlette(routes=[Route("/spend/logs", state.spend_logs)]), lifespan="off") as url:
        yield state, url


async def test_maps_rows_and_filters_by_account_and_run(fake: tuple[FakeSpendLogsApi, str]) -> None:
    state, url = fake
    state.rows = [
        api_row("c1", "acct", "run-1"),
        api_row(
            "c2",
            "acct",
            "run-1",
            status="failure",
            spend=0.0,
            metadata={"spend_logs_metadata": '{"run_id": "run-1"}', "error_information": {"error_code": "500"}},
        ),
        api_row("c3", "someone-else", "run-1"),
        api_row("c4", "acct", "run-2"),
    ]
    source = LiteLLMSpendLogsApiSource(url, MASTER_KEY)
    records = await source.for_run("acct", "run-1")
    assert [r.call_id for r in records] == ["c1", "c2"]
    c1, c2 = records
    assert (c1.end_user, c1.spend, c1.prompt_tokens, c1.completion_tokens) == ("acct", Decimal("0.000004"), 12, 8)
    assert (c1.model, c1.model_group, c1.status) == ("gpt-4o-mini-2024-07-18", "gpt-4o-mini", "success")
    assert c1.metadata["graph_id"] == "langgraph:poet" and c1.end_time is not None
    assert (c2.status, c2.error_code, c2.metadata) == ("failure", "500", {"run_id": "run-1"})
    query = state.queries[-1]
    assert query["summary"] == "false"
    assert query["start_date"] <= datetime.now(UTC).date().isoformat() < query["end_date"]


async def test_since_drops_rows_before_start(fake: tuple[FakeSpendLogsApi, str]) -> None:
    state, url = fake
    early = datetime.now(UTC) - timedelta(hours=2)
    state.rows = [
        api_row("new", "acct", "r"),
        api_row("old", "acct", "r", startTime=early.isoformat(), endTime=early.isoformat()),
    ]
    source = LiteLLMSpendLogsApiSource(url, MASTER_KEY)
    assert [r.call_id for r in await source.since(datetime.now(UTC) - timedelta(hours=1))] == ["new"]
    assert len(await source.since(datetime.now(UTC) - timedelta(hours=3))) == 2


async def test_errors_are_raised_not_read_as_empty(fake: tuple[FakeSpendLogsApi, str]) -> None:
    _, url = fake
    with pytest.raises(httpx.HTTPStatusError):
        await LiteLLMSpendLogsApiSource(url, "sk-wrong").for_run("acct", "run-1")


@pytest.mark.integration
async def test_reconciler_bills_from_the_api(fake: tuple[FakeSpendLogsApi, str]) -> None:
    state, url = fake
    with fresh_database("cogni_app_reconcile_api") as db_url:
        async with open_migrated(db_url) as db:
            accounts = Accounts(db)
            account = await accounts.create_account("acme", initial_credits=1_000)
            vkey = await accounts.create_virtual_key(account.id)
            ledger = Ledger(db, markup=Decimal("2.0"), is_free_model=lambda m: False)
            state.rows = [api_row("c1", account.id, "run-1"), api_row("c2", account.id, "run-1", spend=0.00001)]
            reconciler = Reconciler(ledger, LiteLLMSpendLogsApiSource(url, MASTER_KEY))
            assert await reconciler.reconcile_run(account.id, "run-1") == 2
            receipts = await ledger.receipts_for_run("run-1")
            assert sorted((r["litellm_call_id"], r["charged_credits"]) for r in receipts) == [("c1", 80), ("c2", 200)]
            assert {(r["attempt"], r["graph_id"], r["executor_type"], r["virtual_key_id"]) for r in receipts} == {
                (1, "langgraph:poet", "inproc", vkey.id)
            }
            assert await ledger.balance(account.id) == 720
            assert await reconciler.reconcile_run(account.id, "run-1") == 0
            assert await reconciler.sweep() == 0
            assert await ledger.balance(account.id) == 720
