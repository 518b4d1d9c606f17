"""The graphs a server serves, loaded from any LangGraph project's ``langgraph.json``.

``get()`` is on the hot path of every run, so static graphs (a compiled graph or a StateGraph) are
bound to the server's checkpointer/store once and the bound copy is reused: a dict lookup and an
identity check per call. Factories are called per run with the run's RunnableConfig (that is their
point); for schemas and drawing a factory is called once with an empty config and the result cached.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import inspect
from collections.abc import Mapping
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
from cogni_server.graphs.introspect import drawable_graph, graph_schemas, subgraph_schemas
from cogni_server.graphs.loader import GraphKind, factory_arity, load_attr

_MAX_BOUND_PER_GRAPH = 8


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
    arity: int = 1
    template: Pregel | None = None
    bound: list[tuple[Any, Any, Pregel]] = field(default_factory=list)


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
                entry.arity = factory_arity(obj)
            entries[graph_id] = entry
        return cls(project, entries)

    def graph_ids(self) -> list[str]:
        return list(self._entries)

    def __contains__(self, graph_id: object) -> bool:
        return graph_id in self._entries

    def description(self, graph_id: str) -> str | None:
        """The optional ``description`` of a graph given as ``{"path": ..., "description": ...}``."""
        return self._entry(graph_id).spec.description

    def _entry(self, graph_id: str) -> _Entry:
        entry = self._entries.get(graph_id)
        if entry is None:
            raise GraphNotFound(graph_id)
        return entry

    async def get(
        self, graph_id: str, *, checkpointer: Any, store: Any = None, config: Mapping[str, Any] | None = None
    ) -> Pregel:
        """A compiled graph bound to ``checkpointer`` (and ``store`` when given), ready to run."""
        entry = self._entry(graph_id)
        if entry.kind is GraphKind.FACTORY:
            made = await self._call_factory(entry, config)
            return _bind(graph_id, made, checkpointer, store)
        for bound_cp, bound_store, graph in entry.bound:
            if bound_cp is checkpointer and bound_store is store:
                return graph
        graph = _bind(graph_id, entry.obj, checkpointer, store)
        entry.bound.append((checkpointer, store, graph))
        if len(entry.bound) > _MAX_BOUND_PER_GRAPH:
            entry.bound.pop(0)
        return graph

    async def _call_factory(self, entry: _Entry, config: Mapping[str, Any] | None) -> Any:
        run_config: dict[str, Any] = dict(config or {})
        run_config.setdefault("configurable", {})
        try:
            made = entry.obj(run_config) if entry.arity else entry.obj()
            if inspect.isawaitable(made):
                made = await made
        except Exception as exc:
            raise GraphLoadError(
                f"graph {entry.spec.graph_id!r}: factory {entry.spec.spec!r} failed: {type(exc).__name__}: {exc}"
            ) from exc
        return made

    def _template(self, graph_id: str) -> Pregel:
        """A compiled graph for introspection (no checkpointer); factories are called once for it."""
        entry = self._entry(graph_id)
        if entry.template is None:
            made = _run_sync(self._call_factory(entry, None))
            entry.template = _bind(graph_id, made, None, None)
        return entry.template

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
