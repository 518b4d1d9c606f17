"""The mock upstream through the official `openai` client (in-process via httpx's ASGI transport)."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import httpx2
import openai
import pytest
from openai import AsyncOpenAI
from openai.types.chat import ChatCompletionMessageFunctionToolCall

from cogni_mock_llm import MockSettings, create_app

TOOLS: list[Any] = [
    {"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}},
    {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object"}}},
]


def _client(settings: MockSettings | None = None) -> AsyncOpenAI:
    transport = httpx2.ASGITransport(app=create_app(settings))  # openai's own HTTP library
    http = httpx2.AsyncClient(transport=transport, base_url="http://mock")
    return AsyncOpenAI(base_url="http://mock/v1", api_key="any", http_client=http, max_retries=0)


@pytest.fixture
async def client() -> AsyncIterator[AsyncOpenAI]:
    async with _client() as c:
        yield c


def _user(text: str) -> list[Any]:
    return [{"role": "user", "content": text}]


async def test_hello_gets_the_documented_reply_and_usage(client: AsyncOpenAI) -> None:
    completion = await client.chat.completions.create(model="gpt-4o-mini", messages=_user("Hello"))
    assert completion.choices[0].message.content == "You said: Hello"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.model == "gpt-4o-mini"
    assert completion.id.startswith("chatcmpl-")
    assert completion.usage is not None
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (1, 3)
    assert completion.usage.total_tokens == 4


async def test_reply_echoes_the_last_user_message_and_counts_all_prompt_tokens(client: AsyncOpenAI) -> None:
    messages: list[Any] = [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "first question"},
        {"role": "assistant", "content": "first answer"},
        {"role": "user", "content": [{"type": "text", "text": "second   question\n here"}]},
    ]
    completion = await client.chat.completions.create(model="m", messages=messages)
    assert completion.choices[0].message.content == "You said: second question here"
    assert completion.usage is not None and completion.usage.prompt_tokens == 9


async def test_streaming_text_reassembles_one_chunk_per_token_with_a_final_usage_chunk(
    client: AsyncOpenAI,
) -> None:
    stream = await client.chat.completions.create(
        model="gpt-4o-mini",
        messages=_user("tell me a story"),
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = [chunk async for chunk in stream]
    pieces = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    assert "".join(pieces) == "You said: tell me a story"
    assert len(pieces) == 6
    assert chunks[-2].choices[0].finish_reason == "stop"
    last = chunks[-1]
    assert last.choices == []
    assert last.usage is not None
    assert (last.usage.prompt_tokens, last.usage.completion_tokens, last.usage.total_tokens) == (4, 6, 10)
    assert all(c.usage is None for c in chunks[:-1])


async def test_streaming_without_include_usage_sends_no_usage_chunk(client: AsyncOpenAI) -> None:
    stream = await client.chat.completions.create(model="m", messages=_user("Hello"), stream=True)
    chunks = [chunk async for chunk in stream]
    assert all(c.usage is None and c.choices for c in chunks)


async def test_tool_call_when_offered_and_asked(client: AsyncOpenAI) -> None:
    messages = _user('please call lookup {"query": "otters", "limit": 3}')
    first = await client.chat.completions.create(model="m", messages=messages, tools=TOOLS)
    again = await client.chat.completions.create(model="m", messages=messages, tools=TOOLS)
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    [call] = choice.message.tool_calls or []
    assert isinstance(call, ChatCompletionMessageFunctionToolCall)
    assert call.function.name == "lookup"
    assert json.loads(call.function.arguments) == {"query": "otters", "limit": 3}
    assert call.id.startswith("call_") and len(call.id) == len("call_") + 24
    assert (again.choices[0].message.tool_calls or [])[0].id == call.id  # deterministic


async def test_streamed_tool_call_deltas_reassemble_to_valid_json(client: AsyncOpenAI) -> None:
    stream = await client.chat.completions.create(
        model="m",
        messages=_user('call lookup {"query": "sea otters", "limit": 3} then call get_time'),
        tools=TOOLS,
        stream=True,
        stream_options={"include_usage": True},
    )
    calls: dict[int, dict[str, str]] = {}
    argument_chunks = 0
    finish = None
    async for chunk in stream:
        for choice in chunk.choices:
            finish = choice.finish_reason or finish
            for delta in choice.delta.tool_calls or []:
                entry = calls.setdefault(delta.index, {"id": "", "name": "", "arguments": ""})
                entry["id"] += delta.id or ""
                if delta.function:
                    entry["name"] += delta.function.name or ""
                    if delta.function.arguments:
                        entry["arguments"] += delta.function.arguments
                        argument_chunks += 1
    assert finish == "tool_calls"
    assert [calls[i]["name"] for i in sorted(calls)] == ["lookup", "get_time"]
    assert json.loads(calls[0]["arguments"]) == {"query": "sea otters", "limit": 3}
    assert json.loads(calls[1]["arguments"]) == {}
    assert argument_chunks > 2  # arguments really are split across chunks
    assert calls[0]["id"] != calls[1]["id"]


async def test_no_tool_call_for_unoffered_tools_or_tool_choice_none(client: AsyncOpenAI) -> None:
    unoffered = await client.chat.completions.create(model="m", messages=_user("call missing_tool"), tools=TOOLS)
    assert unoffered.choices[0].message.content == "You said: call missing_tool"
    refused = await client.chat.completions.create(
        model="m", messages=_user("call lookup"), tools=TOOLS, tool_choice="none"
    )
    assert refused.choices[0].message.tool_calls is None


async def test_tool_choice_required_forces_a_call(client: AsyncOpenAI) -> None:
    forced = await client.chat.completions.create(
        model="m", messages=_user("whatever"), tools=TOOLS, tool_choice="required"
    )
    calls = forced.choices[0].message.tool_calls or []
    assert [c.function.name for c in calls if isinstance(c, ChatCompletionMessageFunctionToolCall)] == ["lookup"]


async def test_tool_result_is_quoted_in_the_final_answer(client: AsyncOpenAI) -> None:
    messages: list[Any] = [
        {"role": "user", "content": "call lookup"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_abc", "type": "function", "function": {"name": "lookup", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "call_abc", "content": '{"result": 42}'},
    ]  # fmt: skip
    completion = await client.chat.completions.create(model="m", messages=messages, tools=TOOLS)
    assert completion.choices[0].message.content == 'The tool lookup returned: {"result": 42}'


@pytest.mark.parametrize(
    ("status", "error"),
    [(429, openai.RateLimitError), (500, openai.InternalServerError), (503, openai.InternalServerError)],
)
async def test_status_directives_fail_like_openai(client: AsyncOpenAI, status: int, error: type[Exception]) -> None:
    with pytest.raises(error) as caught:
        await client.chat.completions.create(model="m", messages=_user(f"hi [mock:status={status}]"))
    assert isinstance(caught.value, openai.APIStatusError)
    assert caught.value.status_code == status
    assert f"[mock:status={status}]" in caught.value.message


async def test_tokens_directive_produces_exactly_n_tokens(client: AsyncOpenAI) -> None:
    completion = await client.chat.completions.create(model="m", messages=_user("go [mock:tokens=250]"))
    text = completion.choices[0].message.content or ""
    assert len(text.split()) == 250
    assert text.startswith("lorem ipsum dolor")
    assert completion.usage is not None and completion.usage.completion_tokens == 250


async def test_reply_directive_scripts_the_text(client: AsyncOpenAI) -> None:
    completion = await client.chat.completions.create(model="m", messages=_user("[mock:reply=Exactly this.]"))
    assert completion.choices[0].message.content == "Exactly this."


async def test_delay_directive_paces_tokens(client: AsyncOpenAI) -> None:
    started = time.monotonic()
    stream = await client.chat.completions.create(model="m", messages=_user("a b c d [mock:delay_ms=40]"), stream=True)
    assert len([c async for c in stream]) == 8  # role + 6 tokens ("You said: a b c d") + finish
    assert time.monotonic() - started >= 6 * 0.04 * 0.9


async def test_hang_is_bounded_by_settings() -> None:
    async with _client(MockSettings(hang_seconds=0.3)) as client:
        started = time.monotonic()
        completion = await client.chat.completions.create(model="m", messages=_user("Hello [mock:hang]"))
    assert 0.3 <= time.monotonic() - started < 5
    assert completion.choices[0].message.content == "You said: Hello"


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"model": "m", "messages": []}, "'messages' must be a non-empty list"),
        ({"messages": [{"role": "user", "content": "x"}]}, "'model' is required"),
        ({"model": "m", "n": 2, "messages": [{"role": "user", "content": "x"}]}, "only n=1"),
        ({"model": "m", "messages": [{"role": "user", "content": "x [mock:bogus]"}]}, "unknown mock directive"),
        ({"model": "m", "messages": [{"role": "user", "content": "[mock:tokens=abc]"}]}, "needs an integer"),
    ],
)
async def test_bad_requests_get_a_clear_400(body: dict[str, Any], fragment: str) -> None:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app()), base_url="http://mock") as http:
        response = await http.post("/v1/chat/completions", json=body)
    assert response.status_code == 400
    assert fragment in response.json()["error"]["message"]


async def test_models_and_health(client: AsyncOpenAI) -> None:
    models = [m.id async for m in client.models.list()]
    assert "gpt-4o-mini" in models
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app()), base_url="http://mock") as http:
        assert (await http.get("/health")).json() == {"status": "ok"}
