"""Tools graphs may offer, and the policy that decides whether a call may run."""

from cogni_graphs.tools.policy import POLICY_DENIED, allowed_tool_ids, run_tool_call, tools_node
from cogni_graphs.tools.registry import TOOLS, tools_for

__all__ = ["POLICY_DENIED", "TOOLS", "allowed_tool_ids", "run_tool_call", "tools_for", "tools_node"]
