"""InProcProvider: runs a catalog graph in this process, through the same translator as the server.

Checkpointer: `cogni-app serve` passes LangGraph's Postgres saver on the app database
(`cogni_app.db.postgres_checkpointer`), so conversations survive a restart and are shared by replicas.
Built without one (tests), the provider keeps conversations in memory for the life of the process.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.memory import InMemorySaver

from cogni_ai_core import LLM_KEY_CONFIGURABLE, ExecutorType, parse_graph_id
from cogni_app.executors.catalog import AgentDescriptor, catalog_descriptors
from cogni_app.executors.driver import drive
from cogni_app.executors.jsonable import to_jsonable
from cogni_app.executors.port import GraphRunRequest, GraphRunResult, LlmKeyOf, UnknownGraph
from cogni_app.executors.translate import StreamTranslator

STREAM_MODES = ["messages", "updates", "custom"]
GraphCompiler = Callable[[str, BaseCheckpointSaver[Any]], Any]
GraphLister = Callable[[], list[AgentDescriptor]]


def _catalog_compiler(name: str, checkpointer: BaseCheckpointSaver[Any]) -> Any:
    from cogni_graphs.catalog import CATALOG, compile_graph

    if name not in CATALOG:
        raise UnknownGraph(f"graph {name!r} is not in the catalog (known: {', '.join(sorted(CATALOG))})")
    return compile_graph(name, checkpointer=checkpointer)


class InProcProvider:
    """Runs (and lists) the graphs compiled in this process: the catalog's, one compiled graph per name, cached."""

    executor_type = ExecutorType.INPROC

    def __init__(
        self,
        *,
        checkpointer: BaseCheckpointSaver[Any] | None = None,
        compiler: GraphCompiler = _catalog_compiler,
        lister: GraphLister = catalog_descriptors,
        llm_key: LlmKeyOf | None = None,
    ) -> None:
        self._checkpointer: BaseCheckpointSaver[Any] = checkpointer or InMemorySaver()
        self._llm_key = llm_key
        self._compiler = compiler
        self._lister = lister
        self._graphs: dict[str, Any] = {}

    def _graph(self, name: str) -> Any:
        graph = self._graphs.get(name)
        if graph is None:
            graph = self._graphs[name] = self._compiler(name, self._checkpointer)
        return graph

    async def list_agents(self, *, billing_account_id: str) -> list[AgentDescriptor]:
        """The graphs this process can compile (the same for every account)."""
        return self._lister()

    def run_graph(self, request: GraphRunRequest) -> GraphRunResult:
        graph = self._graph(parse_graph_id(request.graph_id).name)
        thread_id = request.thread_id
        run_config = request.run_config(self.executor_type)
        config = {"configurable": {**run_config.to_configurable(), "thread_id": thread_id}}
        translator = StreamTranslator(request, executor_type=self.executor_type, provider_thread_id=thread_id)

        async def parts() -> AsyncIterator[tuple[str, Any]]:
            key = await self._llm_key(request.billing_account_id) if self._llm_key is not None else None
            if key is not None:  # `__`-prefixed: LangGraph copies it into no checkpoint metadata
                config["configurable"][LLM_KEY_CONFIGURABLE] = key
            stream = graph.astream({"messages": request.input_messages}, config, stream_mode=STREAM_MODES)
            async for mode, chunk in stream:
                yield str(mode), to_jsonable(chunk)

        return drive(parts, translator, executor=self.executor_type.value)
