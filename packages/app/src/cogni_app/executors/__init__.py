"""Graph executors: the port, its providers (in-process, Agent Server) and the shared stream translator."""

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
from cogni_app.executors.router import ExecutorRouter, parse_executor_map
from cogni_app.executors.server import LangGraphServerProvider
from cogni_app.executors.translate import StreamTranslator

__all__ = [
    "ExecutorRouter",
    "GraphExecutorPort",
    "GraphFinal",
    "GraphRunRequest",
    "GraphRunResult",
    "InProcProvider",
    "LangGraphServerProvider",
    "StreamTranslator",
    "ToolCallRecord",
    "UnknownGraph",
    "UsageTotals",
    "parse_executor_map",
]
