"""`LiteLLMChatModel`: a LangChain chat model on LiteLLM's OpenAI-compatible API that bills per call.

Why not langchain-openai's ChatOpenAI: it drops LiteLLM's `usage.cost` and does not expose the
`x-litellm-call-id` header per call reliably. Here the openai client's raw/streaming responses give
us the headers; every successful call emits one `LlmCallUsage` as a LangGraph `custom` stream event
and keeps it on the message as `response_metadata["litellm"]`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import weakref
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from typing import Any

import httpx2
import openai
from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, convert_to_openai_messages
from langchain_core.messages.tool import ToolCallChunk, tool_call_chunk
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable
from langchain_core.tools import BaseTool
from langchain_core.utils.function_calling import convert_to_openai_tool
from langgraph.config import get_stream_writer
from pydantic import Field, SecretStr

from cogni_ai_core import LlmCallUsage
from cogni_graphs.llm.capture import RESPONSE_COST_HEADER, build_call_usage, parse_cost, usage_fields, usage_metadata
from cogni_graphs.llm.errors import from_openai_error
from cogni_graphs.llm.tracing import with_trace_headers

log = logging.getLogger(__name__)
LITELLM_METADATA_KEY = "litellm"

CONNECT_TIMEOUT_SECONDS = 5.0
"""One attempt at opening a connection to LiteLLM (the rest of a call has the model's whole timeout)."""
POOL_LIMITS = httpx2.Limits(max_connections=1000, max_keepalive_connections=100, keepalive_expiry=5.0)

_ClientKey = tuple[str, float, int]
_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[_ClientKey, openai.AsyncOpenAI]] = (
    weakref.WeakKeyDictionary()
)


def _client(base_url: str, api_key: str, timeout: float, connect_retries: int) -> openai.AsyncOpenAI:
    """One pooled client per event loop and endpoint (a pool must not outlive or cross its loop); a call with
    another key (a run's per-account key) shares its connection pool through `with_options`.

    Retries are only those that cannot bill a call twice: the transport repeats opening a connection
    that failed (`ConnectError`, `ConnectTimeout`: refused, reset or timed out before a byte of the
    request was sent) up to `connect_retries` times, after 0, 0.5, 1, 2, 4, 8... s (httpcore's backoff).
    Nothing is retried once the request went out (`max_retries=0`): LiteLLM may already have made, and
    charged, the call.
    """
    loop = asyncio.get_running_loop()
    per_loop = _clients.setdefault(loop, {})
    key = (base_url, timeout, connect_retries)
    client = per_loop.get(key)
    if client is None:
        transport = httpx2.AsyncHTTPTransport(retries=connect_retries, limits=POOL_LIMITS)
        client = openai.AsyncOpenAI(
            base_url=base_url,
            api_key=api_key,
            timeout=httpx2.Timeout(timeout, connect=min(timeout, CONNECT_TIMEOUT_SECONDS)),
            max_retries=0,
            http_client=openai.DefaultAsyncHttpxClient(transport=transport),
        )
        per_loop[key] = client
    return client if client.api_key == api_key else client.with_options(api_key=api_key)


def emit_usage(usage: LlmCallUsage) -> None:
    """Send the usage as a `custom` stream event to whoever runs the graph (no-op outside a graph)."""
    try:
        writer = get_stream_writer()
    except RuntimeError:  # called outside a LangGraph run: the message metadata still carries it
        return
    writer(usage.dump())


class LiteLLMChatModel(BaseChatModel):
    """A chat model bound to one run: model alias, end user, attribution header and node name."""

    model: str
    base_url: str
    api_key: SecretStr
    timeout_seconds: float = 120.0
    connect_retries: int = 6
    """Attempts to open a connection again after it failed, before any byte was sent (see `_client`)."""
    end_user: str | None = None
    extra_headers: dict[str, str] = Field(default_factory=dict)
    node: str | None = None
    attempt: int | None = None
    """The run attempt (0-based) its spend-log metadata names; carried on every usage event."""
    temperature: float | None = None
    max_tokens: int | None = None

    @property
    def _llm_type(self) -> str:
        return "cogni-litellm"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"model": self.model, "base_url": self.base_url, "node": self.node}

    def bind_tools(
        self,
        tools: Sequence[dict[str, Any] | type | Callable[..., Any] | BaseTool],
        *,
        tool_choice: str | dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        """Offer tools to the model (OpenAI function format); `tool_choice` passes through."""
        formatted = [convert_to_openai_tool(tool) for tool in tools]
        if tool_choice is not None:
            kwargs["tool_choice"] = tool_choice
        return self.bind(tools=formatted, **kwargs)

    def _body(self, messages: list[BaseMessage], stop: list[str] | None, kwargs: dict[str, Any]) -> dict[str, Any]:
        body: dict[str, Any] = {"model": self.model, "messages": convert_to_openai_messages(messages)}
        if self.end_user:
            body["user"] = self.end_user
        if stop:
            body["stop"] = stop
        if self.temperature is not None:
            body["temperature"] = self.temperature
        if self.max_tokens is not None:
            body["max_tokens"] = self.max_tokens
        for key in ("tools", "tool_choice", "parallel_tool_calls"):
            if kwargs.get(key) is not None:
                body[key] = kwargs[key]
        unknown = set(kwargs) - {"tools", "tool_choice", "parallel_tool_calls", "stream"}
        if unknown:
            raise TypeError(f"LiteLLMChatModel got unsupported call options: {sorted(unknown)}")
        return body

    def _openai(self) -> openai.AsyncOpenAI:
        return _client(self.base_url, self.api_key.get_secret_value(), self.timeout_seconds, self.connect_retries)

    def _report_usage(
        self,
        headers: Mapping[str, str],
        fields: dict[str, Any],
        *,
        cost: object,
        response_id: str | None,
        response_model: str,
        finish_reason: str | None,
    ) -> dict[str, Any]:
        """The call's `response_metadata`; its usage (when LiteLLM reported one) is kept there and emitted."""
        usage = build_call_usage(
            headers=headers,
            fields=fields,
            cost=parse_cost(cost),
            model=self.model,
            node=self.node,
            provider_response_id=response_id,
            attempt=self.attempt,
        )
        metadata: dict[str, Any] = {"model_name": response_model, "finish_reason": finish_reason}
        if usage is not None:
            metadata[LITELLM_METADATA_KEY] = usage.dump()
            emit_usage(usage)
        return metadata

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        raise NotImplementedError("LiteLLMChatModel is async-only: use ainvoke/astream (graph nodes are async)")

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        raise NotImplementedError("LiteLLMChatModel is async-only: use ainvoke/astream (graph nodes are async)")

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        """One non-streaming call; the cost comes from the `x-litellm-response-cost` header."""
        body = self._body(messages, stop, kwargs)
        try:
            raw = await self._openai().chat.completions.with_raw_response.create(
                **body, extra_headers=with_trace_headers(self.extra_headers, run_manager)
            )
            completion = raw.parse()
        except openai.OpenAIError as exc:
            raise from_openai_error(exc, self.model) from exc
        headers = raw.headers
        choice = completion.choices[0]
        fields = usage_fields(completion.usage)
        tool_calls = []
        invalid: list[Any] = []
        for call in choice.message.tool_calls or []:
            function = getattr(call, "function", None)
            if function is None:
                continue
            try:
                args = json.loads(function.arguments or "{}")
            except json.JSONDecodeError as exc:
                invalid.append(
                    {
                        "id": call.id,
                        "name": function.name,
                        "args": function.arguments,
                        "error": str(exc),
                        "type": "invalid_tool_call",
                    }
                )
                continue
            tool_calls.append({"id": call.id, "name": function.name, "args": args, "type": "tool_call"})
        metadata = self._report_usage(
            headers,
            fields,
            cost=headers.get(RESPONSE_COST_HEADER),
            response_id=completion.id,
            response_model=completion.model,
            finish_reason=choice.finish_reason,
        )
        message = AIMessage(
            content=choice.message.content or "",
            tool_calls=tool_calls,
            invalid_tool_calls=invalid,
            usage_metadata=usage_metadata(fields),
            response_metadata=metadata,
        )
        return ChatResult(generations=[ChatGeneration(message=message)])

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        """One streaming call with `include_usage`; the cost comes from the final chunk's `usage.cost`."""
        body = self._body(messages, stop, kwargs)
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
        fields: dict[str, Any] = {}
        finish_reason: str | None = None
        response_id: str | None = None
        response_model: str | None = None
        try:
            async with self._openai().chat.completions.with_streaming_response.create(
                **body, extra_headers=with_trace_headers(self.extra_headers, run_manager)
            ) as response:
                headers = response.headers
                stream = await response.parse()
                async for chunk in stream:
                    response_id = response_id or chunk.id
                    response_model = response_model or chunk.model
                    if chunk.usage is not None:
                        fields = usage_fields(chunk.usage)
                    for choice in chunk.choices[:1]:
                        finish_reason = choice.finish_reason or finish_reason
                        delta = choice.delta
                        tool_chunks: list[ToolCallChunk] = [
                            tool_call_chunk(
                                name=call.function.name if call.function else None,
                                args=call.function.arguments if call.function else None,
                                id=call.id,
                                index=call.index,
                            )
                            for call in delta.tool_calls or []
                        ]
                        if delta.content or tool_chunks:
                            yield ChatGenerationChunk(
                                message=AIMessageChunk(content=delta.content or "", tool_call_chunks=tool_chunks)
                            )
        except (openai.OpenAIError, httpx2.HTTPError) as exc:
            raise from_openai_error(exc, self.model) from exc
        metadata = self._report_usage(
            headers,
            fields,
            cost=fields.get("cost"),
            response_id=response_id,
            response_model=response_model or self.model,
            finish_reason=finish_reason,
        )
        yield ChatGenerationChunk(
            message=AIMessageChunk(
                content="", usage_metadata=usage_metadata(fields), response_metadata=metadata, chunk_position="last"
            )
        )
