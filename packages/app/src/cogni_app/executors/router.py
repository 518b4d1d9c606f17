"""Chooses the provider for a graph id: an exact graph id entry first, then its namespace."""

from __future__ import annotations

from collections.abc import Mapping

from cogni_ai_core import parse_graph_id
from cogni_app.executors.port import GraphExecutorPort, GraphRunRequest, GraphRunResult, UnknownGraph


def parse_executor_map(spec: str) -> dict[str, str]:
    """`"langgraph=server,langgraph:chat=inproc"` -> {"langgraph": "server", "langgraph:chat": "inproc"}."""
    out: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in spec.split(","))):
        key, sep, value = item.rpartition("=")
        if not sep or not key.strip() or not value.strip():
            raise ValueError(f"COGNI_EXECUTOR_MAP entry {item!r} must be '<namespace or graph id>=<provider>'")
        out[key.strip()] = value.strip()
    return out


class ExecutorRouter:
    """A GraphExecutorPort that delegates to named providers by configuration."""

    def __init__(self, providers: Mapping[str, GraphExecutorPort], routes: Mapping[str, str]) -> None:
        unknown = {name for name in routes.values() if name not in providers}
        if unknown:
            raise ValueError(f"executor routes name unknown providers {sorted(unknown)}; known: {sorted(providers)}")
        self._providers = dict(providers)
        self._routes = dict(routes)

    def provider_for(self, graph_id: str) -> GraphExecutorPort:
        parsed = parse_graph_id(graph_id)
        name = self._routes.get(str(parsed)) or self._routes.get(parsed.provider)
        if name is None:
            raise UnknownGraph(f"no executor is configured for graph namespace {parsed.provider!r}")
        return self._providers[name]

    def run_graph(self, request: GraphRunRequest) -> GraphRunResult:
        return self.provider_for(request.graph_id).run_graph(request)
