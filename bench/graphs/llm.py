"""A one-node chat graph that streams from any OpenAI-compatible endpoint (the mock LLM in the bench).

It carries its own tiny chat model over httpx instead of importing our graphs package, so the very
same file runs inside our server and inside every peer's virtual environment (which have
langgraph and httpx but not our code). The endpoint comes from the run's
`configurable.llm_base_url`, falling back to the `BENCH_LLM_BASE_URL` environment variable.
"""

from __future__ import annotations

import asyncio
import json
import os
import weakref
from collections.abc import AsyncIterator
from typing import Any

import httpx
from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.runnables import RunnableConfig
from langgraph.graph import END, START, MessagesState, StateGraph

ROLES = {"human": "user", "ai": "assistant", "system": "system", "tool": "tool"}


def _wire(messages: list[BaseMessage]) -> list[dict[str, str]]:
    return [{"role": ROLES.get(m.type, "user"), "content": str(m.content)} for m in messages]


DONE = object()


def _delta(line: str) -> str | object | None:
    """The content delta of one OpenAI server-sent-event line, DONE at the end, else None."""
    if not line.startswith("data:"):
        return None
    data = line[5:].strip()
    if data == "[DONE]":
        return DONE
    texts = [(c.get("delta") or {}).get("content") or "" for c in json.loads(data).get("choices") or []]
    return "".join(texts) or None


# One HTTP client per event loop, as a real chat-model client keeps one: building a client per run
# loaded the CA store (ssl.create_default_context) before every first token, for every server alike.
_CLIENTS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, httpx.AsyncClient] = weakref.WeakKeyDictionary()


def _shared_client(timeout: float) -> httpx.AsyncClient:
    loop = asyncio.get_running_loop()
    client = _CLIENTS.get(loop)
    if client is None:
        client = _CLIENTS[loop] = httpx.AsyncClient(timeout=timeout)
    return client


class OpenAICompatibleChat(BaseChatModel):
    """Just enough of a chat model for LangGraph's `messages` stream modes to see every token."""

    base_url: str
    model: str = "mock-chat"
    api_key: str = "bench"
    timeout: float = 60.0

    @property
    def _llm_type(self) -> str:
        return "bench-openai-compatible"

    def _body(self, messages: list[BaseMessage], stream: bool) -> dict[str, Any]:
        return {"model": self.model, "messages": _wire(messages), "stream": stream}

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"}

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        url = f"{self.base_url.rstrip('/')}/chat/completions"
        response = httpx.post(url, json=self._body(messages, False), headers=self._headers(), timeout=self.timeout)
        response.raise_for_status()
        text = response.json()["choices"][0]["message"].get("content") or ""
        return ChatResult(generations=[ChatGeneration(message=AIMessage(content=text))])

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        url = f"{self.base_url.rstrip('/')}/chat/completions"
        client = _shared_client(self.timeout)
        async with client.stream("POST", url, json=self._body(messages, True), headers=self._headers()) as response:
            response.raise_for_status()
            async for line in response.aiter_lines():
                text = _delta(line)
                if text is DONE:
                    break
                if isinstance(text, str):
                    chunk = ChatGenerationChunk(message=AIMessageChunk(content=text))
                    if run_manager is not None:
                        await run_manager.on_llm_new_token(text, chunk=chunk)
                    yield chunk


async def call_model(state: MessagesState, config: RunnableConfig) -> dict[str, list[BaseMessage]]:
    """Stream one answer from the configured endpoint."""
    configurable = config.get("configurable") or {}
    base_url = configurable.get("llm_base_url") or os.environ.get("BENCH_LLM_BASE_URL")
    if not base_url:
        raise ValueError("set configurable.llm_base_url or BENCH_LLM_BASE_URL to an OpenAI-compatible /v1 URL")
    model = OpenAICompatibleChat(base_url=str(base_url), model=str(configurable.get("llm_model", "mock-chat")))
    reply = await model.ainvoke(state["messages"], config)
    return {"messages": [reply]}


builder = StateGraph(MessagesState)
builder.add_node("call_model", call_model)
builder.add_edge(START, "call_model")
builder.add_edge("call_model", END)
graph = builder.compile()
