"""One LLM call of a run through the real LiteLLM proxy, made as a graph makes it (billing metadata in
the spend-logs header), for the reconciler tests that bill it without the app's stream."""

from __future__ import annotations

import json
from decimal import Decimal

import httpx

from cogni_ai_core.pricing import price_usage
from testsupport.llm_stack import LlmStack


def llm_call(stack: LlmStack, account: str, run_id: str, *, markup: Decimal) -> tuple[str, int]:
    """The call's id and its price in credits, once the sink has its spend-log row."""
    metadata = {"run_id": run_id, "attempt": 0, "graph_id": "langgraph:chat", "billing_account_id": account,
                "executor_type": "langgraph_server"}  # fmt: skip
    response = httpx.post(
        f"{stack.litellm_base_url}/chat/completions",
        headers={"Authorization": f"Bearer {stack.master_key}", "x-litellm-spend-logs-metadata": json.dumps(metadata)},
        json={"model": stack.paid_model, "user": account, "messages": [{"role": "user", "content": "hi"}]},
        timeout=60.0,
    )
    assert response.status_code == 200, response.text
    call_id = response.headers["x-litellm-call-id"]
    row = stack.wait_for_spend_row(call_id)
    return call_id, price_usage(Decimal(str(row["spend"])), markup=markup, is_free=False).credits
