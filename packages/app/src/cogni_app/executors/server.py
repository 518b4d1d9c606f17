"""LangGraphServerProvider: runs graphs on the Agent Server through the official langgraph-sdk client.

The thread id is derived from (billing account, state key), the thread is created idempotently with
the tenant metadata, only the new user input is sent, and every call carries a short-lived service
JWT whose subject is the billing account.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, cast

from langgraph_sdk import get_client
from langgraph_sdk.schema import Config, StreamMode

from cogni_ai_core import ExecutorType, parse_graph_id
from cogni_app.executors.driver import drive
from cogni_app.executors.port import GraphRunRequest, GraphRunResult
from cogni_app.executors.translate import StreamTranslator
from cogni_app.service_auth import ServiceTokenMinter

STREAM_MODES: list[StreamMode] = ["messages-tuple", "updates", "custom"]


class LangGraphServerProvider:
    """GraphExecutorPort for the Agent Server; `langgraph:<name>` runs assistant `<name>`."""

    executor_type = ExecutorType.LANGGRAPH_SERVER

    def __init__(self, url: str, *, tokens: ServiceTokenMinter, timeout_seconds: float = 300.0) -> None:
        self.url = url
        self._tokens = tokens
        self._client = get_client(url=url, api_key=None, timeout=(5.0, timeout_seconds, 30.0, 5.0))

    async def aclose(self) -> None:
        await self._client.aclose()

    def run_graph(self, request: GraphRunRequest) -> GraphRunResult:
        assistant = parse_graph_id(request.graph_id).name
        thread_id = request.thread_id
        run_config = request.run_config(self.executor_type)
        translator = StreamTranslator(request, executor_type=self.executor_type, provider_thread_id=thread_id)
        client = self._client

        async def parts() -> AsyncIterator[tuple[str, Any]]:
            headers = {"Authorization": f"Bearer {self._tokens.mint(request.billing_account_id)}"}
            await client.threads.create(
                thread_id=thread_id,
                if_exists="do_nothing",
                metadata={"billingAccountId": request.billing_account_id, "stateKey": request.state_key},
                headers=headers,
            )
            config: Config = {"configurable": run_config.to_configurable()}
            stream = client.runs.stream(
                thread_id,
                assistant,
                input=cast(Any, {"messages": request.input_messages}),
                config=config,
                stream_mode=STREAM_MODES,
                headers=headers,
            )
            async for part in stream:
                yield part.event, part.data

        return drive(parts, translator, executor=self.executor_type.value)
