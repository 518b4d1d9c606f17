"""The graph catalog: the single source of truth for which graphs exist and what they may use.

`langgraph.json` is generated from it (`cogni-graphs sync`). Entries name their graph module by
import path and resolve it lazily, so graph modules may read their own entry (tool ids) without an
import cycle, and the server can load the same module by file path.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from langgraph.graph import StateGraph
from langgraph.graph.state import CompiledStateGraph

GRAPH_PROVIDER = "langgraph"


@dataclass(frozen=True)
class CatalogEntry:
    """One graph: its name (the graph id on the server), what users see, which tools it may offer."""

    name: str
    display_name: str
    description: str
    tool_ids: tuple[str, ...]
    module: str
    attr: str = "graph"

    @property
    def graph_id(self) -> str:
        """The namespaced id (`langgraph:<name>`) the app uses."""
        return f"{GRAPH_PROVIDER}:{self.name}"

    @property
    def factory(self) -> Callable[[], StateGraph[Any]]:
        """The module's `build()`: an uncompiled StateGraph."""
        builder: Callable[[], StateGraph[Any]] = importlib.import_module(self.module).build
        return builder

    @property
    def langgraph_path(self) -> str:
        """`./src/<module path>.py:<attr>`, relative to packages/graphs (where langgraph.json lives)."""
        return f"./src/{self.module.replace('.', '/')}.py:{self.attr}"


def _entries(*entries: CatalogEntry) -> Mapping[str, CatalogEntry]:
    return MappingProxyType({entry.name: entry for entry in entries})


CATALOG: Mapping[str, CatalogEntry] = _entries(
    CatalogEntry(
        name="chat",
        display_name="Chat",
        description="Plain conversation with the model. No tools.",
        tool_ids=(),
        module="cogni_graphs.chat.graph",
    ),
    CatalogEntry(
        name="poet",
        display_name="Poet",
        description="Writes a short poem about the present moment; asks the clock for the time first.",
        tool_ids=("core__get_current_time",),
        module="cogni_graphs.poet.graph",
    ),
    CatalogEntry(
        name="research",
        display_name="Research",
        description=(
            "Answers questions from the bundled notes: searches them and calculates, looping over tool calls "
            "until it can answer."
        ),
        tool_ids=("core__search_notes", "core__calculator"),
        module="cogni_graphs.research.graph",
    ),
)


class UnknownGraph(KeyError):
    """A graph name that is not in the catalog."""

    def __str__(self) -> str:
        return f"unknown graph {self.args[0]!r}; the catalog has: {', '.join(sorted(CATALOG))}"


def catalog_entry(name: str) -> CatalogEntry:
    """The entry for `name` (a catalog name like `chat`, or a namespaced id like `langgraph:chat`)."""
    provider, sep, short = name.partition(":")
    key = short if sep and provider == GRAPH_PROVIDER else name
    try:
        return CATALOG[key]
    except KeyError:
        raise UnknownGraph(name) from None


def compile_graph(name: str, checkpointer: Any = None, store: Any = None) -> CompiledStateGraph[Any, Any, Any, Any]:
    """Build and compile catalog graph `name` with the caller's checkpointer and store."""
    return catalog_entry(name).factory().compile(checkpointer=checkpointer, store=store)
