"""Enumerations that name who ran a graph and which system reported its usage."""

from enum import StrEnum


class ExecutorType(StrEnum):
    """Where a graph ran. Server runs are told apart from in-process ones by this, not by source."""

    LANGGRAPH_SERVER = "langgraph_server"
    CLAUDE_SDK = "claude_sdk"
    INPROC = "inproc"
    SANDBOX = "sandbox"


class SourceSystem(StrEnum):
    """Which system's numbers a usage fact carries. Decision: no `langgraph_server` source."""

    LITELLM = "litellm"
    ANTHROPIC_SDK = "anthropic_sdk"
