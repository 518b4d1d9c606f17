"""The state every catalog graph shares: a message list merged with `add_messages`."""

from collections.abc import Awaitable
from typing import Annotated, Any, Protocol, TypedDict

from langchain_core.messages import AnyMessage
from langchain_core.runnables import RunnableConfig
from langgraph.graph.message import add_messages


class ChatState(TypedDict):
    """Conversation state: new messages are appended (or replace one with the same id)."""

    messages: Annotated[list[AnyMessage], add_messages]


class GraphNode(Protocol):
    """An async node that reads the state and the run's config (the shape LangGraph calls with config)."""

    def __call__(self, state: ChatState, config: RunnableConfig) -> Awaitable[dict[str, Any]]: ...
