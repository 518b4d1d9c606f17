"""Graph executors: the port, the catalog port, the providers (in-process, Agent Server), the router and the
shared stream translator."""

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
from cogni_app.executors.router import AgentListing, CatalogFailure, ExecutorRouter, RoutedAgent, parse_executor_map
from cogni_app.executors.server import LangGraphServerProvider
from cogni_app.executors.translate import StreamTranslator

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
    "StreamTranslator",
    "ToolCallRecord",
    "UnknownGraph",
    "UsageTotals",
    "parse_executor_map",
]
