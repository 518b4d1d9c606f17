"""Graph executors: the port, the catalog port, the providers (in-process, Agent Server) and the router.

Both providers feed the same stream translator (`executors.translate`)."""

from cogni_app.executors.catalog import (
    AgentCatalogPort,
    AgentCatalogUnavailable,
    AgentDescriptor,
    GraphProvider,
)
from cogni_app.executors.inproc import InProcProvider
from cogni_app.executors.port import (
    GraphExecutorPort,
    GraphFinal,
    GraphRunRequest,
    GraphRunResult,
    ToolCallRecord,
    UnknownGraph,
    UsageTotals,
)
from cogni_app.executors.router import AgentListing, CatalogFailure, ExecutorRouter, RoutedAgent
from cogni_app.executors.server import LangGraphServerProvider

__all__ = [
    "AgentCatalogPort",
    "AgentCatalogUnavailable",
    "AgentDescriptor",
    "AgentListing",
    "CatalogFailure",
    "ExecutorRouter",
    "GraphExecutorPort",
    "GraphFinal",
    "GraphProvider",
    "GraphRunRequest",
    "GraphRunResult",
    "InProcProvider",
    "LangGraphServerProvider",
    "RoutedAgent",
    "ToolCallRecord",
    "UnknownGraph",
    "UsageTotals",
]
