"""Agent discovery: the graphs a client may name as `graphId`, listed through the same routing that runs
them. An incomplete list is an error (AgentsUnavailable), never a silently shorter list."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from cogni_app.executors import AgentListing, RoutedAgent
from cogni_app.services.errors import AgentsUnavailable


class RoutedCatalog(Protocol):
    """The executor router's listing side."""

    async def list_agents(self, *, billing_account_id: str) -> AgentListing: ...


@dataclass(frozen=True)
class AgentList:
    agents: list[RoutedAgent]
    default_agent_id: str


class AgentsService:
    def __init__(self, catalog: RoutedCatalog, *, default_graph_id: str) -> None:
        self._catalog = catalog
        self._default = default_graph_id

    async def list_agents(self, billing_account_id: str) -> AgentList:
        """Every routed graph, sorted by id; AgentsUnavailable (with what was listed) if any provider failed."""
        listing = await self._catalog.list_agents(billing_account_id=billing_account_id)
        if listing.failures:
            raise AgentsUnavailable(listing.failures, listing.agents)
        return AgentList(agents=listing.agents, default_agent_id=self._default)
