"""Spend-log rows for reconciler tests: written through the sink's own upsert, read back by the app."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import psycopg
from prometheus_client import REGISTRY

from cogni_litellm_sink.mapping import SpendRow
from cogni_litellm_sink.schema import UPSERT


def spend_row(call_id: str, account: str | None, run_id: str | None, **overrides: Any) -> SpendRow:
    """A successful gpt-4o-mini call of `account`'s run that cost $0.000004 (80 credits at markup 2)."""
    ended = datetime.now(UTC) - timedelta(seconds=5)
    meta = {"run_id": run_id, "attempt": 0, "graph_id": "langgraph:chat", "billing_account_id": account,
            "executor_type": "langgraph_server"}  # fmt: skip
    values: dict[str, Any] = {
        "call_id": call_id, "provider_response_id": f"chatcmpl-{call_id}", "end_user": account,
        "spend": Decimal("0.000004"), "prompt_tokens": 12, "completion_tokens": 8, "total_tokens": 20,
        "model": "gpt-4o-mini-2024-07-18", "model_group": "gpt-4o-mini", "status": "success", "error_code": None,
        "spend_logs_metadata": {k: v for k, v in meta.items() if v is not None}, "request_tags": [],
        "start_time": ended - timedelta(seconds=1), "end_time": ended,
    }  # fmt: skip
    values.update(overrides)
    return SpendRow(**values)


def write_spend_rows(url: str, *rows: SpendRow, inserted_at: datetime | None = None) -> None:
    """Upsert rows as the sink does; `inserted_at` backdates them (the sink's own insertion time)."""
    with psycopg.connect(url, autocommit=True) as conn:
        for row in rows:
            conn.execute(UPSERT.encode(), row.values())
        if inserted_at is not None:
            conn.execute(
                "UPDATE litellm_spend_logs SET inserted_at = %s WHERE call_id = ANY(%s)",
                (inserted_at, [r.call_id for r in rows]),
            )


def metric(name: str, labels: dict[str, str] | None = None) -> float:
    return REGISTRY.get_sample_value(name, labels or {}) or 0.0
