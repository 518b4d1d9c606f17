from decimal import Decimal
from typing import Any

import pytest
from pydantic import ValidationError

from cogni_ai_core import (
    ExecutorType,
    LlmCallUsage,
    UsageFact,
    charge_idempotency_key,
    is_llm_call_usage,
)


def fact(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "runId": "run-1",
        "attempt": 0,
        "usageUnitId": "call-abc",
        "source": "litellm",
        "executorType": "langgraph_server",
        "billingAccountId": "acct-1",
        "virtualKeyId": "vk-1",
        "graphId": "langgraph:chat",
        "model": "gpt-4o-mini",
        "inputTokens": 12,
        "outputTokens": 5,
        "costUsd": 0.000004,
    }
    base.update(overrides)
    return base


def test_valid_fact_round_trips_in_camel_case() -> None:
    parsed = UsageFact.model_validate(fact())
    assert parsed.cost_usd == Decimal("0.000004")
    assert parsed.source_reference == "run-1/0/call-abc"
    assert charge_idempotency_key(parsed) == ("litellm", "run-1/0/call-abc")
    wire = parsed.dump()
    assert wire["usageUnitId"] == "call-abc" and "usage_unit_id" not in wire
    assert UsageFact.model_validate(wire) == parsed


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"surprise": 1}, "Extra inputs are not permitted"),
        ({"usageUnitId": ""}, "usageUnitId"),
        ({"usageUnitId": "   "}, "non-empty"),
        ({"inputTokens": -1}, "greater than or equal to 0"),
        ({"outputTokens": "5"}, "valid integer"),
        ({"costUsd": -0.1}, "greater than or equal to 0"),
        ({"graphId": "chat"}, "namespaced"),
        ({"source": "langgraph_server"}, "litellm"),
    ],
)
def test_strict_facts_reject_bad_input(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        UsageFact.model_validate(fact(**overrides))


def test_missing_usage_unit_id_is_rejected() -> None:
    data = fact()
    del data["usageUnitId"]
    with pytest.raises(ValidationError, match="usageUnitId"):
        UsageFact.model_validate(data)


def test_per_call_usage_event_becomes_a_billable_fact() -> None:
    event = {"type": "usage", "callId": "call-1", "model": "gpt-4o-mini", "inputTokens": 3, "costUsd": "0.0001"}
    assert is_llm_call_usage(event)
    assert not is_llm_call_usage({"type": "progress"})
    usage = LlmCallUsage.model_validate(event)
    made = usage.to_usage_fact(
        run_id="run-9",
        attempt=2,
        executor_type=ExecutorType.INPROC,
        billing_account_id="acct-1",
        virtual_key_id="vk-1",
        graph_id="langgraph:poet",
    )
    assert made.usage_unit_id == "call-1"
    assert made.source_reference == "run-9/2/call-1"
    assert made.cost_usd == Decimal("0.0001")
    assert made.executor_type == ExecutorType.INPROC
