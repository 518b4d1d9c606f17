"""The catalog port: which graphs a provider can run, and what users are told about them.

Providers describe their graphs by *name* (what `run_graph` runs for `<namespace>:<name>`); the router
puts the namespaces in front, because the namespace is a routing choice, not the provider's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from cogni_app.executors.port import GraphExecutorPort


@dataclass(frozen=True)
class AgentDescriptor:
    """One graph a provider can run: its name there, a display name, a description and its tool ids."""

    name: str
    display_name: str
    description: str
    tool_ids: tuple[str, ...] = ()


class AgentCatalogUnavailable(Exception):
    """A provider could not say which graphs it has (its server is down, refused us, or answered garbage)."""


class AgentCatalogPort(Protocol):
    """Lists the graphs a provider runs, as seen by `billing_account_id` (the Agent Server authenticates it)."""

    async def list_agents(self, *, billing_account_id: str) -> list[AgentDescriptor]: ...


class GraphProvider(GraphExecutorPort, AgentCatalogPort, Protocol):
    """What the router needs of a provider: run graphs and list them, through the same routing."""


def catalog_descriptor(name: str) -> AgentDescriptor | None:
    """The graph catalog's entry for `name` as a descriptor; None for a graph the catalog does not know."""
    from cogni_graphs.catalog import CATALOG  # lazily: the catalog imports LangGraph

    entry = CATALOG.get(name)
    if entry is None:
        return None
    return AgentDescriptor(entry.name, entry.display_name, entry.description, tuple(entry.tool_ids))


def catalog_descriptors() -> list[AgentDescriptor]:
    """Every graph of the catalog (what the in-process provider can compile)."""
    from cogni_graphs.catalog import CATALOG

    return [d for d in map(catalog_descriptor, CATALOG) if d is not None]
