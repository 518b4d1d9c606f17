"""Every tool a graph may offer, by tool id (`core__<name>`; the id is also the function name the model sees)."""

from collections.abc import Mapping
from types import MappingProxyType

from langchain_core.tools import BaseTool

from cogni_graphs.tools.calculator import calculator_tool
from cogni_graphs.tools.clock import get_current_time_tool
from cogni_graphs.tools.notes import search_notes_tool

TOOLS: Mapping[str, BaseTool] = MappingProxyType(
    {tool.name: tool for tool in (get_current_time_tool, search_notes_tool, calculator_tool)}
)


def tools_for(tool_ids: tuple[str, ...] | list[str]) -> list[BaseTool]:
    """The tools with these ids, in order; an unknown id is a programming error in the catalog."""
    missing = [tool_id for tool_id in tool_ids if tool_id not in TOOLS]
    if missing:
        raise KeyError(f"unknown tool ids {missing}; known: {sorted(TOOLS)}")
    return [TOOLS[tool_id] for tool_id in tool_ids]
