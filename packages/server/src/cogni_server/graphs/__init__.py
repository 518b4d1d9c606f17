"""Loading a LangGraph project's ``langgraph.json``: graphs, schemas, drawable graph, subgraphs."""

from __future__ import annotations

from cogni_server.graphs.registry import GraphLoadError, GraphNotFound, GraphRegistry

__all__ = ["GraphLoadError", "GraphNotFound", "GraphRegistry"]
