"""LangGraphServerProvider: runs graphs on the Agent Server through the official langgraph-sdk client.

The thread id is derived from (billing account, state key), the thread is created idempotently with
the tenant metadata, only the new user input is sent, and every call carries a short-lived service
JWT whose subject is the billing account.

Listing: the graphs are the server's system assistants (`metadata.created_by == "system"`, one per
graph of its `langgraph.json`), found with `assistants.search`. They carry no display name, description
or tool list (their name is the graph id), so those come from our graph catalog when it knows the
graph; a graph it does not know is described by the assistant's own name, description and a
`tool_ids` list in its metadata, if any.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Mapping
from typing import Any, cast

import httpx
from langgraph_sdk import get_client
from langgraph_sdk.client import LangGraphClient
from langgraph_sdk.schema import Config, StreamMode

from cogni_ai_core import LLM_KEY_HEADER, ExecutorType, parse_graph_id
from cogni_app.executors.catalog import AgentCatalogUnavailable, AgentDescriptor, catalog_descriptor
from cogni_app.executors.driver import drive
from cogni_app.executors.port import GraphRunRequest, GraphRunResult, LlmKeyOf
from cogni_app.executors.tracing import executor_span, request_context
from cogni_app.executors.translate import StreamTranslator
from cogni_app.service_auth import ServiceTokenMinter

STREAM_MODES: list[StreamMode] = ["messages-tuple", "updates", "custom"]
SYSTEM_ASSISTANTS = {"created_by": "system"}
SEARCH_PAGE = 100
Describe = Callable[[str], AgentDescriptor | None]


class LangGraphServerProvider:
    """GraphExecutorPort for the Agent Server; `langgraph:<name>` runs assistant `<name>`."""

    executor_type = ExecutorType.LANGGRAPH_SERVER

    def __init__(
        self,
        url: str,
        *,
        tokens: ServiceTokenMinter,
        timeout_seconds: float = 300.0,
        list_timeout_seconds: float = 10.0,
        describe: Describe = catalog_descriptor,
        ssl_context: ssl.SSLContext | None = None,
        llm_key: LlmKeyOf | None = None,
    ) -> None:
        self.url = url
        self._tokens = tokens
        self._llm_key = llm_key
        timeout = (5.0, timeout_seconds, 30.0, 5.0)
        self._client = (
            get_client(url=url, api_key=None, timeout=timeout)
            if ssl_context is None
            else _tls_client(url, ssl_context, timeout)
        )
        self._list_timeout = list_timeout_seconds
        self._describe = describe

    async def aclose(self) -> None:
        await self._client.aclose()

    async def list_agents(self, *, billing_account_id: str) -> list[AgentDescriptor]:
        """One descriptor per graph the server has; AgentCatalogUnavailable when it cannot be asked."""
        try:
            assistants = await asyncio.wait_for(self._system_assistants(billing_account_id), self._list_timeout)
        except TimeoutError as exc:
            raise AgentCatalogUnavailable(
                f"the Agent Server at {self.url} did not list its assistants within {self._list_timeout:g}s"
            ) from exc
        except httpx.HTTPStatusError as exc:
            status = getattr(exc, "status_code", None) or exc.response.status_code
            raise AgentCatalogUnavailable(
                f"the Agent Server at {self.url} answered HTTP {status} to assistants.search: {_first_line(exc)}"
            ) from exc
        except httpx.HTTPError as exc:
            raise AgentCatalogUnavailable(
                f"the Agent Server at {self.url} is unreachable ({type(exc).__name__}: {_first_line(exc)})"
            ) from exc
        graphs: dict[str, AgentDescriptor] = {}
        for assistant in assistants:
            graph = assistant.get("graph_id")
            if isinstance(graph, str) and graph not in graphs:
                graphs[graph] = self._describe(graph) or _from_assistant(graph, assistant)
        return [graphs[g] for g in sorted(graphs)]

    async def _system_assistants(self, billing_account_id: str) -> list[Mapping[str, Any]]:
        headers = {"Authorization": f"Bearer {self._tokens.mint(billing_account_id)}"}
        found: list[Mapping[str, Any]] = []
        while True:
            page = await self._client.assistants.search(
                metadata=SYSTEM_ASSISTANTS, limit=SEARCH_PAGE, offset=len(found), headers=headers
            )
            if not isinstance(page, list) or not all(isinstance(a, Mapping) for a in page):
                raise AgentCatalogUnavailable(f"the Agent Server at {self.url} answered assistants.search oddly")
            found += page
            if len(page) < SEARCH_PAGE:
                return found

    def run_graph(self, request: GraphRunRequest) -> GraphRunResult:
        assistant = parse_graph_id(request.graph_id).name
        thread_id = request.thread_id
        run_config = request.run_config(self.executor_type)
        translator = StreamTranslator(request, executor_type=self.executor_type, provider_thread_id=thread_id)
        client = self._client
        parent = request_context()  # the chat request's trace, continued by the server and the run
        span_attributes = {
            "cogni.run_id": request.run.run_id,
            "cogni.graph_id": request.graph_id,
            "server.url": self.url,
        }

        async def parts() -> AsyncIterator[tuple[str, Any]]:
            with executor_span("executor.run_graph", parent, span_attributes) as trace_headers:
                async with contextlib.aclosing(_parts(trace_headers)) as inner:
                    async for part in inner:
                        yield part

        async def _parts(trace_headers: dict[str, str]) -> AsyncGenerator[tuple[str, Any]]:
            headers = {"Authorization": f"Bearer {self._tokens.mint(request.billing_account_id)}", **trace_headers}
            await client.threads.create(
                thread_id=thread_id,
                if_exists="do_nothing",
                metadata={"billingAccountId": request.billing_account_id, "stateKey": request.state_key},
                headers=headers,
            )
            config: Config = {"configurable": run_config.to_configurable()}
            run_headers = dict(headers)
            key = await self._llm_key(request.billing_account_id) if self._llm_key is not None else None
            if key is not None:  # the server keeps it encrypted while the run needs it, never in clear
                run_headers[LLM_KEY_HEADER] = key
            stream = client.runs.stream(
                thread_id,
                assistant,
                input=cast(Any, {"messages": request.input_messages}),
                config=config,
                stream_mode=STREAM_MODES,
                headers=run_headers,
            )
            async for part in stream:
                yield part.event, part.data

        return drive(parts, translator, executor=self.executor_type.value)


def _tls_client(url: str, context: ssl.SSLContext, timeout: tuple[float, float, float, float]) -> LangGraphClient:
    """The official client over a transport that presents the app's certificate (mTLS)."""
    transport = httpx.AsyncHTTPTransport(retries=5, verify=context)
    return LangGraphClient(httpx.AsyncClient(base_url=url, transport=transport, timeout=httpx.Timeout(timeout)))


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [""])[0][:300]


def _from_assistant(graph: str, assistant: Mapping[str, Any]) -> AgentDescriptor:
    """A graph our catalog does not know: what the assistant itself says about it."""
    metadata = assistant.get("metadata")
    tools = metadata.get("tool_ids") if isinstance(metadata, Mapping) else None
    tool_ids = tuple(t for t in tools if isinstance(t, str)) if isinstance(tools, list) else ()
    return AgentDescriptor(
        name=graph,
        display_name=str(assistant.get("name") or graph),
        description=str(assistant.get("description") or ""),
        tool_ids=tool_ids,
    )
