"""Chooses the provider for a graph id (an exact graph id entry first, then its namespace), for running
a graph and for listing the graphs, so that discovery shows exactly what execution would run where."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass

import structlog

from cogni_ai_core import InvalidGraphId, parse_graph_id
from cogni_app.executors.catalog import AgentCatalogUnavailable, AgentDescriptor, GraphProvider
from cogni_app.executors.port import GraphRunRequest, GraphRunResult, UnknownGraph

log = structlog.get_logger(__name__)


def parse_executor_map(spec: str) -> dict[str, str]:
    """`"langgraph=server,langgraph:chat=inproc"` -> {"langgraph": "server", "langgraph:chat": "inproc"}."""
    out: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in spec.split(","))):
        key, sep, value = item.rpartition("=")
        if not sep or not key.strip() or not value.strip():
            raise ValueError(f"COGNI_EXECUTOR_MAP entry {item!r} must be '<namespace or graph id>=<provider>'")
        out[key.strip()] = value.strip()
    return out


@dataclass(frozen=True)
class RoutedAgent:
    """A graph as clients name it (`<namespace>:<name>`), the provider that runs it, and its description."""

    graph_id: str
    provider: str
    descriptor: AgentDescriptor


@dataclass(frozen=True)
class CatalogFailure:
    """A route (namespace or exact graph id) whose provider could not list its graphs, and why."""

    route: str
    provider: str
    reason: str


@dataclass(frozen=True)
class AgentListing:
    """Every graph the healthy providers offer through the routes, plus one failure per unlisted route."""

    agents: list[RoutedAgent]
    failures: list[CatalogFailure]


class ExecutorRouter:
    """A GraphExecutorPort (and catalog) that delegates to named providers by configuration."""

    def __init__(self, providers: Mapping[str, GraphProvider], routes: Mapping[str, str]) -> None:
        unknown = {name for name in routes.values() if name not in providers}
        if unknown:
            raise ValueError(f"executor routes name unknown providers {sorted(unknown)}; known: {sorted(providers)}")
        self._providers = dict(providers)
        self._routes = dict(routes)

    def route_of(self, graph_id: str) -> str | None:
        """The provider name that runs `graph_id`, or None when no route covers it."""
        parsed = parse_graph_id(graph_id)
        return self._routes.get(str(parsed)) or self._routes.get(parsed.provider)

    def provider_for(self, graph_id: str) -> GraphProvider:
        name = self.route_of(graph_id)
        if name is None:
            raise UnknownGraph(f"no executor is configured for graph namespace {parse_graph_id(graph_id).provider!r}")
        return self._providers[name]

    def run_graph(self, request: GraphRunRequest) -> GraphRunResult:
        return self.provider_for(request.graph_id).run_graph(request)

    async def list_agents(self, *, billing_account_id: str) -> AgentListing:
        """Ask each routed provider once (concurrently); a provider that fails is reported for its routes."""
        names = sorted(set(self._routes.values()))
        answers = await asyncio.gather(
            *(self._providers[n].list_agents(billing_account_id=billing_account_id) for n in names),
            return_exceptions=True,
        )
        listed: dict[str, list[AgentDescriptor]] = {}
        failures: list[CatalogFailure] = []
        for name, answer in zip(names, answers, strict=True):
            if isinstance(answer, AgentCatalogUnavailable):
                failures += [CatalogFailure(r, name, str(answer)) for r, p in sorted(self._routes.items()) if p == name]
            elif isinstance(answer, BaseException):
                raise answer  # a bug, not an outage: let it be one
            else:
                listed[name] = answer
        agents: dict[str, RoutedAgent] = {}
        for route, provider in self._routes.items():
            for descriptor in listed.get(provider, []):
                graph_id = self._graph_id(route, descriptor.name)
                if graph_id is not None and self.route_of(graph_id) == provider:
                    agents[graph_id] = RoutedAgent(graph_id, provider, descriptor)
        return AgentListing([agents[g] for g in sorted(agents)], failures)

    @staticmethod
    def _graph_id(route: str, name: str) -> str | None:
        """`<namespace>:<name>` for a namespace route; for an exact graph id route, only that graph."""
        namespace, _, exact = route.partition(":")
        if exact and exact != name:
            return None
        try:
            return str(parse_graph_id(f"{namespace}:{name}"))
        except InvalidGraphId:
            log.warning("agent_name_not_a_graph_id", route=route, name=name)
            return None
