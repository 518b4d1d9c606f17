"""The chat use case's plain inputs: the command, its policy (typed settings), and the ids of a run."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal


@dataclass(frozen=True)
class ChatPolicy:
    """The settings the chat use case reads, and nothing else."""

    default_graph_id: str
    markup: Decimal
    first_event_timeout_seconds: float


@dataclass(frozen=True)
class ChatCommand:
    """One chat message from an authenticated account; every field already validated by the caller.

    `state_key`, `graph_id` and `model` are None when the client did not name them (then: a new
    conversation, the default graph, the default model). `request_id` and `trace_id` are final.
    """

    billing_account_id: str
    virtual_key_id: str
    message: str
    state_key: str | None
    graph_id: str | None
    model: str | None
    request_id: str
    trace_id: str


@dataclass(frozen=True)
class RunIds:
    """What identifies the run to the client: the conversation, our run id, the request and the trace."""

    state_key: str
    run_id: str
    request_id: str
    trace_id: str
