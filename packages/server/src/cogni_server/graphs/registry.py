"""The graphs a server serves, loaded from any LangGraph project's ``langgraph.json``.

``open()`` is on the hot path of every run, so static graphs (a compiled graph or a StateGraph) are
bound to the server's checkpointer/store once and the bound copy is reused: a dict lookup and an
identity check per call. Factories (``graphs.factory``) are called each time a graph is needed, with
the run's RunnableConfig and a ``ServerRuntime`` saying why (``access_context``): per run, per state
read or update, per schema/drawing request, as the reference server does. A factory that is a
context manager stays open for exactly that use.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from langgraph.graph import StateGraph
from langgraph.pregel import Pregel

from cogni_server.graphs.config import (
    GraphLoadError,
    GraphSpec,
    ProjectConfig,
    apply_project_environment,
    read_project_config,
)
from cogni_server.graphs.factory import FactorySignature, made_graph, read_signature, server_runtime
from cogni_server.graphs.introspect import drawable_graph, graph_schemas, subgraph_schemas
from cogni_server.graphs.loader import GraphKind, load_attr

_MAX_BOUND_PER_GRAPH = 8
AUTH_USER_KEY = "langgraph_auth_user"  # where the reference keeps the authenticated user in configurable


class GraphNotFound(KeyError):
    """No graph with this id in langgraph.json."""

    def __init__(self, graph_id: str) -> None:
        super().__init__(graph_id)
        self.graph_id = graph_id

    def __str__(self) -> str:
        return f"graph {self.graph_id!r} not found"


@dataclass
class _Entry:
    spec: GraphSpec
    kind: GraphKind
    obj: Any
    signature: FactorySignature = field(default_factory=FactorySignature)
    template: Pregel | None = None
    bound: list[tuple[Any, Any, Pregel]] = field(default_factory=list)


def _user_of(config: Mapping[str, Any]) -> Any:
    """The authenticated user a run carries (custom auth puts it in configurable), else None."""
    user = (config.get("configurable") or {}).get(AUTH_USER_KEY)
    return user if hasattr(user, "identity") else None


class GraphRegistry:
    """Graph id -> loaded graph; see the module docstring for caching rules."""

    def __init__(self, project: ProjectConfig, entries: dict[str, _Entry]) -> None:
        self.project = project
        self._entries = entries

    @classmethod
    def from_config(cls, config_path: Path) -> GraphRegistry:
        """Read langgraph.json, apply its dependencies and env, import every graph now.

        Importing eagerly turns a broken project into a clear start-up error (GraphLoadError).
        """
        project = read_project_config(Path(config_path))
        apply_project_environment(project)
        entries: dict[str, _Entry] = {}
        for graph_id, spec in project.graphs.items():
            kind, obj = load_attr(spec)
            entry = _Entry(spec, kind, obj)
            if kind is GraphKind.COMPILED:
                entry.template = obj
            elif kind is GraphKind.STATE_GRAPH:
                entry.template = _compile(graph_id, obj, None, None)
            else:
                entry.signature = read_signature(graph_id, obj)
            entries[graph_id] = entry
        return cls(project, entries)

    def graph_ids(self) -> list[str]:
        return list(self._entries)

    def __contains__(self, graph_id: object) -> bool:
        return graph_id in self._entries

    def description(self, graph_id: str) -> str | None:
        """The optional ``description`` of a graph given as ``{"path": ..., "description": ...}``."""
        return self._entry(graph_id).spec.description

    def is_factory(self, graph_id: str) -> bool:
        return self._entry(graph_id).kind is GraphKind.FACTORY

    def _entry(self, graph_id: str) -> _Entry:
        entry = self._entries.get(graph_id)
        if entry is None:
            raise GraphNotFound(graph_id)
        return entry

    @asynccontextmanager
    async def open(
        self,
        graph_id: str,
        *,
        checkpointer: Any,
        store: Any = None,
        config: Mapping[str, Any] | None = None,
        access_context: str = "threads.create_run",
        runtime_store: Any = None,
        user: Any = None,
        context: Any = None,
    ) -> AsyncIterator[Pregel]:
        """A compiled graph bound to ``checkpointer`` (and ``store`` when given), for one use.

        For a factory: ``config`` is what it receives; ``access_context``, ``runtime_store`` (the
        caller's view of the store), ``user`` (default: the custom-auth user in ``config``) and
        ``context`` (the run's context, runs only) make its ``ServerRuntime``.
        """
        entry = self._entry(graph_id)
        if entry.kind is not GraphKind.FACTORY:
            yield self._bound_static(graph_id, entry, checkpointer, store)
            return
        run_config: dict[str, Any] = dict(config or {})
        run_config["configurable"] = dict(run_config.get("configurable") or {})
        who = user if user is not None else _user_of(run_config)

        def runtime() -> Any:
            return server_runtime(access_context, store=runtime_store, user=who, context=context)

        async with made_graph(graph_id, entry.spec.spec, entry.obj, entry.signature, run_config, runtime) as made:
            yield _bind(graph_id, made, checkpointer, store)

    async def get(
        self, graph_id: str, *, checkpointer: Any, store: Any = None, config: Mapping[str, Any] | None = None
    ) -> Pregel:
        """``open()`` for callers that keep no context: a factory's context manager (if it is one)
        is already closed when the graph is returned, so the server's own paths all use ``open()``."""
        async with self.open(graph_id, checkpointer=checkpointer, store=store, config=config) as graph:
            return graph

    def _bound_static(self, graph_id: str, entry: _Entry, checkpointer: Any, store: Any) -> Pregel:
        for bound_cp, bound_store, graph in entry.bound:
            if bound_cp is checkpointer and bound_store is store:
                return graph
        graph = _bind(graph_id, entry.obj, checkpointer, store)
        entry.bound.append((checkpointer, store, graph))
        if len(entry.bound) > _MAX_BOUND_PER_GRAPH:
            entry.bound.pop(0)
        return graph

    # -- introspection: schemas, drawing, subgraphs (access context ``assistants.read``) ------------

    @asynccontextmanager
    async def _introspected(
        self, graph_id: str, config: Mapping[str, Any] | None, runtime_store: Any, user: Any
    ) -> AsyncIterator[Pregel]:
        entry = self._entry(graph_id)
        if entry.kind is not GraphKind.FACTORY:
            assert entry.template is not None
            yield entry.template
            return
        async with self.open(
            graph_id,
            checkpointer=None,
            config=config,
            access_context="assistants.read",
            runtime_store=runtime_store,
            user=user,
        ) as graph:
            yield graph

    async def aschemas(
        self, graph_id: str, *, config: Mapping[str, Any] | None = None, runtime_store: Any = None, user: Any = None
    ) -> dict[str, Any]:
        """Schemas of the graph; a factory is called for them with ``assistants.read``."""
        async with self._introspected(graph_id, config, runtime_store, user) as graph:
            return graph_schemas(graph_id, graph)

    async def adrawable(
        self,
        graph_id: str,
        xray: bool | int = False,
        *,
        config: Mapping[str, Any] | None = None,
        runtime_store: Any = None,
        user: Any = None,
    ) -> dict[str, Any]:
        async with self._introspected(graph_id, config, runtime_store, user) as graph:
            return drawable_graph(graph, xray)

    async def asubgraphs(
        self,
        graph_id: str,
        namespace: str | None,
        recurse: bool,
        *,
        config: Mapping[str, Any] | None = None,
        runtime_store: Any = None,
        user: Any = None,
    ) -> dict[str, dict[str, Any]]:
        async with self._introspected(graph_id, config, runtime_store, user) as graph:
            return subgraph_schemas(graph_id, graph, namespace, recurse)

    def _template(self, graph_id: str) -> Pregel:
        """Sync introspection (no request context): a factory is called once, then cached."""
        entry = self._entry(graph_id)
        if entry.template is None:
            entry.template = _run_sync(self._made_template(graph_id))
        return entry.template

    async def _made_template(self, graph_id: str) -> Pregel:
        async with self._introspected(graph_id, None, None, None) as graph:
            return graph

    def schemas(self, graph_id: str) -> dict[str, Any]:
        return graph_schemas(graph_id, self._template(graph_id))

    def drawable(self, graph_id: str, xray: bool | int = False) -> dict[str, Any]:
        return drawable_graph(self._template(graph_id), xray)

    def subgraphs(self, graph_id: str, namespace: str | None, recurse: bool) -> dict[str, dict[str, Any]]:
        return subgraph_schemas(graph_id, self._template(graph_id), namespace, recurse)


def _compile(graph_id: str, builder: StateGraph[Any], checkpointer: Any, store: Any) -> Pregel:
    try:
        return builder.compile(checkpointer=checkpointer, store=store)
    except Exception as exc:
        raise GraphLoadError(f"graph {graph_id!r}: cannot compile: {type(exc).__name__}: {exc}") from exc


def _bind(graph_id: str, graph: Any, checkpointer: Any, store: Any) -> Pregel:
    """Copy a compiled graph with the server's checkpointer (and store), or compile a StateGraph."""
    if isinstance(graph, Pregel):
        update: dict[str, Any] = {"checkpointer": checkpointer}
        if store is not None:
            update["store"] = store
        return graph.copy(update=update)
    if isinstance(graph, StateGraph):
        return _compile(graph_id, graph, checkpointer, store)
    raise GraphLoadError(
        f"graph {graph_id!r}: factory returned {type(graph).__name__}, expected a compiled graph or StateGraph"
    )


def _run_sync(coro: Any) -> Any:
    """Run a coroutine to completion from sync code, even when called inside a running event loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()
