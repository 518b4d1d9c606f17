"""GraphExecutorPort: the one way the app runs a graph, whichever process actually runs it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Protocol

from cogni_ai_core import (
    AiEvent,
    AiExecutionErrorCode,
    ExecutorType,
    GraphRunConfig,
    RunContext,
    UsageFact,
    derive_thread_id,
)


@dataclass(frozen=True)
class GraphRunRequest:
    """Everything a provider needs for one run attempt; built by the app from trusted values only.

    `input_messages` is the NEW user input only: the executor's checkpointer owns the thread state.
    """

    graph_id: str
    model: str
    run: RunContext
    billing_account_id: str
    virtual_key_id: str
    state_key: str
    input_messages: list[dict[str, Any]]
    tool_ids: list[str] | None = None

    @property
    def run_id(self) -> str:
        return self.run.run_id

    @property
    def attempt(self) -> int:
        return self.run.attempt

    @property
    def trace_id(self) -> str | None:
        return self.run.trace_id

    @property
    def request_id(self) -> str | None:
        return self.run.ingress_request_id

    @property
    def thread_id(self) -> str:
        """The executor's thread for this (billing account, state key): the same on every provider."""
        return derive_thread_id(self.billing_account_id, self.state_key)

    def run_config(self, executor_type: ExecutorType) -> GraphRunConfig:
        """The run's trusted config as the graph reads it (`configurable`), whichever provider runs it."""
        return GraphRunConfig(
            model=self.model,
            run_id=self.run_id,
            attempt=self.attempt,
            billing_account_id=self.billing_account_id,
            virtual_key_id=self.virtual_key_id,
            trace_id=self.trace_id,
            request_id=self.request_id,
            tool_ids=self.tool_ids,
            executor_type=executor_type,
            graph_id=self.graph_id,
        )


@dataclass
class UsageTotals:
    """Summed over every LLM call of the run (never "last event wins")."""

    calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: Decimal = Decimal(0)


@dataclass(frozen=True)
class ToolCallRecord:
    tool_call_id: str
    tool_name: str
    args: dict[str, Any]


@dataclass
class GraphFinal:
    """How a run ended; resolves after the stream's last event."""

    ok: bool
    error: AiExecutionErrorCode | None = None
    content: str = ""
    usage: UsageTotals = field(default_factory=UsageTotals)
    tool_calls: list[ToolCallRecord] = field(default_factory=list)
    provider_run_id: str | None = None
    provider_thread_id: str | None = None
    usage_facts: list[UsageFact] = field(default_factory=list)
    """One per LLM call the run made, the same facts its usage_report events carry: what a relay that is
    cancelled before those events come still bills."""


@dataclass(frozen=True)
class GraphRunResult:
    """`stream` must be consumed for `final` to resolve (the relay always consumes it)."""

    stream: AsyncIterator[AiEvent]
    final: Awaitable[GraphFinal]


class GraphExecutorPort(Protocol):
    """Runs a graph and reports it as AiEvents; providers differ only in where the graph runs."""

    def run_graph(self, request: GraphRunRequest) -> GraphRunResult: ...


LlmKeyOf = Callable[[str], Awaitable[str | None]]
"""The per-account LiteLLM key a run of the billing account uses (None: the shared LITELLM_API_KEY)."""


class UnknownGraph(LookupError):
    """No provider is configured for the graph id's namespace, or the graph is not in the catalog."""
