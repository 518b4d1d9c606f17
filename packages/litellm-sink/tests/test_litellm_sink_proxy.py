"""Through a real LiteLLM proxy: what the client sees (headers, usage.cost) equals the sink row."""

from __future__ import annotations

import json
import uuid
from decimal import Decimal
from typing import Any

import httpx
import openai
import pytest
from openai import OpenAI

from testsupport.llm_stack import LlmStack

pytestmark = [pytest.mark.proxy, pytest.mark.integration]


@pytest.fixture
def stack(llm_stack: LlmStack) -> LlmStack:
    return llm_stack


@pytest.fixture
def client(stack: LlmStack) -> OpenAI:
    return OpenAI(base_url=f"{stack.litellm_base_url}/v1", api_key=stack.master_key, max_retries=0, timeout=30)


def _metadata() -> dict[str, str]:
    return {"run_id": f"run-{uuid.uuid4().hex[:8]}", "billing_account_id": "acct-1"}


def _headers(metadata: dict[str, str]) -> dict[str, str]:
    return {"x-litellm-spend-logs-metadata": json.dumps(metadata)}


def test_non_streaming_call_id_and_cost_headers_match_the_sink_row(stack: LlmStack, client: OpenAI) -> None:
    metadata = _metadata()
    raw = client.chat.completions.with_raw_response.create(
        model=stack.paid_model,
        messages=[{"role": "user", "content": "Hello"}],
        user="acct-1",
        extra_headers=_headers(metadata),
    )
    completion = raw.parse()
    assert completion.choices[0].message.content == "You said: Hello"
    call_id = raw.headers["x-litellm-call-id"]
    cost = Decimal(raw.headers["x-litellm-response-cost"])
    assert cost > 0

    row = stack.wait_for_spend_row(call_id)
    assert row["call_id"] == call_id
    assert row["spend"] == cost
    assert row["status"] == "success"
    assert row["error_code"] is None
    assert row["end_user"] == "acct-1"
    assert row["spend_logs_metadata"] == metadata
    assert row["provider_response_id"] == completion.id
    assert row["model_group"] == stack.paid_model
    assert completion.usage is not None
    assert (row["prompt_tokens"], row["completion_tokens"], row["total_tokens"]) == (
        completion.usage.prompt_tokens,
        completion.usage.completion_tokens,
        completion.usage.total_tokens,
    )
    assert row["start_time"] <= row["end_time"]


def test_streaming_final_usage_cost_matches_the_sink_row(stack: LlmStack, client: OpenAI) -> None:
    metadata = _metadata()
    raw = client.chat.completions.with_raw_response.create(
        model=stack.paid_model,
        messages=[{"role": "user", "content": "Stream this to me please"}],
        user="acct-1",
        stream=True,
        stream_options={"include_usage": True},
        extra_headers=_headers(metadata),
    )
    call_id = raw.headers["x-litellm-call-id"]
    text, usage = "", None
    for chunk in raw.parse():
        for choice in chunk.choices:
            text += choice.delta.content or ""
        if chunk.usage is not None:
            usage = chunk.usage
    assert text == "You said: Stream this to me please"
    assert usage is not None
    cost = Decimal(str(usage.model_dump()["cost"]))
    assert cost > 0

    row = stack.wait_for_spend_row(call_id)
    assert row["spend"] == cost
    assert row["completion_tokens"] == usage.completion_tokens == 7
    assert row["end_user"] == "acct-1"
    assert row["spend_logs_metadata"] == metadata


def test_free_alias_costs_nothing(stack: LlmStack, client: OpenAI) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model=stack.free_model, messages=[{"role": "user", "content": "Hello"}], user="acct-2"
    )
    assert Decimal(raw.headers.get("x-litellm-response-cost", "0")) == 0
    row = stack.wait_for_spend_row(raw.headers["x-litellm-call-id"])
    assert row["status"] == "success"
    assert row["spend"] == 0
    assert row["completion_tokens"] == 3
    assert row["model_group"] == stack.free_model


@pytest.mark.parametrize(("status", "error"), [(500, openai.InternalServerError), (429, openai.RateLimitError)])
def test_scripted_upstream_failure_yields_a_failure_row(
    stack: LlmStack, client: OpenAI, status: int, error: type[openai.APIStatusError]
) -> None:
    metadata = _metadata()
    with pytest.raises(error) as caught:
        client.chat.completions.create(
            model=stack.paid_model,
            messages=[{"role": "user", "content": f"break [mock:status={status}]"}],
            user="acct-1",
            extra_headers=_headers(metadata),
        )
    assert caught.value.status_code == status
    call_id = caught.value.response.headers["x-litellm-call-id"]
    row = stack.wait_for_spend_row(call_id)
    assert row["status"] == "failure"
    assert row["spend"] == 0
    assert row["error_code"] == str(status)
    assert row["provider_response_id"] is None
    assert row["end_user"] == "acct-1"
    assert row["spend_logs_metadata"] == metadata


def test_streamed_tool_call_survives_the_proxy(stack: LlmStack, client: OpenAI) -> None:
    tools: list[Any] = [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}]
    stream = client.chat.completions.create(
        model=stack.paid_model,
        messages=[{"role": "user", "content": 'please call lookup {"query": "otters", "limit": 3}'}],
        tools=tools,
        stream=True,
    )
    ids, names, arguments = set(), set(), ""
    for chunk in stream:
        for choice in chunk.choices:
            for delta in choice.delta.tool_calls or []:
                if delta.id:
                    ids.add(delta.id)
                if delta.function and delta.function.name:
                    names.add(delta.function.name)
                if delta.function and delta.function.arguments:
                    arguments += delta.function.arguments
    assert names == {"lookup"}
    assert len(ids) == 1 and next(iter(ids)).startswith("call_")
    assert json.loads(arguments) == {"query": "otters", "limit": 3}


def test_model_info_carries_display_name_free_flag_and_default(stack: LlmStack) -> None:
    response = httpx.get(
        f"{stack.litellm_base_url}/model/info", headers={"Authorization": f"Bearer {stack.master_key}"}
    )
    assert response.status_code == 200
    info = {entry["model_name"]: entry["model_info"] for entry in response.json()["data"]}
    assert {k: info[stack.paid_model][k] for k in ("display_name", "is_free", "is_default")} == {
        "display_name": "GPT-4o mini",
        "is_free": False,
        "is_default": True,
    }
    assert info[stack.free_model]["is_free"] is True
    assert info[stack.free_model]["is_default"] is False
    assert info[stack.free_model]["input_cost_per_token"] == 0
    assert info[stack.paid_model]["input_cost_per_token"] > 0


def test_wrong_key_is_refused(stack: LlmStack) -> None:
    bad = OpenAI(base_url=f"{stack.litellm_base_url}/v1", api_key="sk-not-the-master-key", max_retries=0)
    with pytest.raises(openai.APIStatusError):
        bad.chat.completions.create(model=stack.paid_model, messages=[{"role": "user", "content": "Hello"}])


def test_client_disconnect_mid_stream_is_recorded_with_error_code_499(stack: LlmStack) -> None:
    headers = {"Authorization": f"Bearer {stack.master_key}", **_headers(_metadata())}
    body = {
        "model": stack.paid_model,
        "stream": True,
        "stream_options": {"include_usage": True},
        "user": "acct-1",
        "messages": [{"role": "user", "content": "one two three four five six [mock:delay_ms=100]"}],
    }
    with (
        httpx.Client(timeout=30) as http,
        http.stream("POST", f"{stack.litellm_base_url}/v1/chat/completions", headers=headers, json=body) as s,
    ):
        call_id = s.headers["x-litellm-call-id"]
        received = 0
        for line in s.iter_lines():
            received += line.startswith("data:")
            if received >= 3:
                break  # hang up while the upstream is still producing
    row = stack.wait_for_spend_row(call_id)
    assert row["status"] == "success"
    assert row["error_code"] == "499"
    assert row["spend"] > 0  # LiteLLM estimates the cost of the partial output
    assert row["end_user"] == "acct-1"
