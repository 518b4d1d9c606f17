"""The one error a broken LangGraph project raises: a clear start-up message naming the culprit."""

from __future__ import annotations


class GraphLoadError(RuntimeError):
    """langgraph.json or a graph module could not be loaded (a clear start-up error)."""
