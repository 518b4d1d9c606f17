"""The chat use case: pick the model, check credits, start the run on its provider, hand it to the relay
and wait for its first event, so that a run that fails at once is refused rather than streamed.

After `start` returns, the run belongs to the relay: the caller only reads `ChatStarted.events()`, and
stopping early stops nothing but the reading.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from functools import partial

import structlog

from cogni_ai_core import AiEvent, ErrorEvent, RunContext, new_state_key
from cogni_app.billing import CreditHolds, Hold, InsufficientCredits, estimate_credits
from cogni_app.executors import GraphExecutorPort, GraphRunRequest, UnknownGraph
from cogni_app.models import ModelAllowlist, ModelInfo, UnknownModel
from cogni_app.relay import Relay, RelayedRun
from cogni_app.services.chat_types import ChatCommand, ChatPolicy, RunIds
from cogni_app.services.errors import GraphNotFound, RunFailedEarly

log = structlog.get_logger(__name__)
STREAMED = "streamed"


@dataclass(frozen=True)
class ChatStarted:
    """A run that is going: its ids, the graph and model chosen, the relay's handle and the first event.

    `first` is None when the first event did not come within the policy's timeout (the stream starts
    anyway; later failures are `error` events).
    """

    ids: RunIds
    graph_id: str
    model: str
    run: RelayedRun
    first: AiEvent | None

    async def events(self) -> AsyncIterator[AiEvent]:
        """The UI events, first one included, ending with `done`."""
        if self.first is not None:
            yield self.first
            if self.first.type == "done":
                return
        async for event in self.run.ui_events():
            yield event


def outcome_of(exc: BaseException) -> str | None:
    """The outcome label of a refused chat (for metrics); None for an error that is not a refusal."""
    if isinstance(exc, UnknownModel):
        return "unknown_model"
    if isinstance(exc, InsufficientCredits):
        return "insufficient_credits"
    if isinstance(exc, GraphNotFound):
        return "unknown_graph"
    if isinstance(exc, RunFailedEarly):
        return f"failed_{exc.code}"
    return None


class ChatService:
    """Starts chat runs. Raises UnknownModel, InsufficientCredits (no run, no records), GraphNotFound and
    RunFailedEarly (both carrying the run's ids)."""

    def __init__(
        self,
        *,
        models: ModelAllowlist,
        holds: CreditHolds,
        executor: GraphExecutorPort,
        relay: Relay,
        policy: ChatPolicy,
    ) -> None:
        self._models = models
        self._holds = holds
        self._executor = executor
        self._relay = relay
        self._policy = policy

    async def start(self, command: ChatCommand) -> ChatStarted:
        graph_id = command.graph_id or self._policy.default_graph_id
        model = self._models.resolve(command.model)
        ids = RunIds(
            state_key=command.state_key or new_state_key(),
            run_id=str(uuid.uuid4()),
            request_id=command.request_id,
            trace_id=command.trace_id,
        )
        hold = await self._hold(command, model, ids)
        request = GraphRunRequest(
            graph_id=graph_id,
            model=model.id,
            run=RunContext(run_id=ids.run_id, attempt=0, ingress_request_id=ids.request_id, trace_id=ids.trace_id),
            billing_account_id=command.billing_account_id,
            virtual_key_id=command.virtual_key_id,
            state_key=ids.state_key,
            input_messages=[{"role": "user", "content": command.message}],
        )
        # this request's (and its relay task's) log lines carry the run's ids from here on
        structlog.contextvars.bind_contextvars(
            request_id=ids.request_id, tenant=command.billing_account_id, run_id=ids.run_id, thread_id=request.thread_id
        )
        try:
            result = self._executor.run_graph(request)
        except UnknownGraph as exc:
            await self._holds.release(hold)
            raise GraphNotFound(str(exc), ids) from exc
        run = self._relay.start(
            result,
            run_id=ids.run_id,
            billing_account_id=command.billing_account_id,
            ingress_request_id=ids.request_id,
            on_finished=partial(self._holds.release, hold),
        )
        log.info("chat_run_started", run_id=ids.run_id, graph_id=graph_id, model=model.id, request_id=ids.request_id)
        first = await self._first_event(run)
        if isinstance(first, ErrorEvent):
            raise RunFailedEarly(first.error, ids)
        return ChatStarted(ids=ids, graph_id=graph_id, model=model.id, run=run, first=first)

    async def _hold(self, command: ChatCommand, model: ModelInfo, ids: RunIds) -> Hold:
        """Hold the run's estimate (the thread so far plus the new message), or InsufficientCredits when the
        balance minus the holds of the account's other runs does not cover it (no run, no records)."""
        context = 0
        if command.state_key is not None and not model.is_free:
            context = await self._holds.thread_context_tokens(command.billing_account_id, command.state_key)
        estimate = estimate_credits(
            model.id, len(command.message), is_free=model.is_free, markup=self._policy.markup, context_tokens=context
        )
        return await self._holds.take(command.billing_account_id, ids.run_id, estimate, state_key=ids.state_key)

    async def _first_event(self, run: RelayedRun) -> AiEvent | None:
        try:
            return await asyncio.wait_for(run.next_ui_event(), timeout=self._policy.first_event_timeout_seconds)
        except TimeoutError:
            return None  # slow first token: stream anyway; later failures are events
