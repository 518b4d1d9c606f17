"""`POST /v1/chat`: run a graph for the calling account and stream its AiEvents as SSE.

Before the stream starts, failures are HTTP statuses (400, 402, 403, 404, 408, 409, 429, 503); the
first event is awaited before answering so that a run that fails at once still gets a status. After
that, failures are `error` then `done` events. The run is owned by the relay, not by this request.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import AsyncIterator
from typing import Annotated

import orjson
import structlog
from fastapi import APIRouter, Header
from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic.alias_generators import to_camel
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.responses import Response

from cogni_ai_core import (
    AiEvent,
    ErrorEvent,
    InvalidGraphId,
    InvalidStateKey,
    RunContext,
    new_state_key,
    parse_graph_id,
    validate_state_key,
)
from cogni_app.api.deps import Principal, Runtime
from cogni_app.api.errors import STATUS_OF_CODE, ApiError
from cogni_app.api.metrics import CHAT_REQUESTS
from cogni_app.billing import InsufficientCredits, estimate_credits
from cogni_app.executors import GraphRunRequest, UnknownGraph
from cogni_app.models import UnknownModel

router = APIRouter()
log = structlog.get_logger(__name__)
MAX_MESSAGE_CHARS = 100_000
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_TRACEPARENT = re.compile(r"^[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}$")


class ChatBody(BaseModel):
    """The client may name the conversation, graph and model; identity and run ids are ours."""

    model_config = ConfigDict(extra="forbid", alias_generator=to_camel, populate_by_name=True)

    message: Annotated[str, Field(min_length=1, max_length=MAX_MESSAGE_CHARS)]
    state_key: str | None = None
    graph_id: str | None = None
    model: Annotated[str, Field(min_length=1, max_length=256)] | None = None

    @field_validator("message")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("message must not be blank")
        return value

    @field_validator("state_key")
    @classmethod
    def _state_key(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            return validate_state_key(value)
        except InvalidStateKey as exc:
            raise ValueError(str(exc)) from None

    @field_validator("graph_id")
    @classmethod
    def _graph_id(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            return str(parse_graph_id(value))
        except InvalidGraphId as exc:
            raise ValueError(str(exc)) from None


def _trace_id(traceparent: str | None) -> str:
    match = _TRACEPARENT.match((traceparent or "").strip().lower())
    return match.group(1) if match else uuid.uuid4().hex


def _request_id(header: str | None) -> str:
    return header if header and _REQUEST_ID.match(header) else str(uuid.uuid4())


def _sse(event: AiEvent) -> ServerSentEvent:
    return ServerSentEvent(data=orjson.dumps(event.dump()).decode(), event=event.type)


@router.post("/v1/chat", response_model=None)
async def chat(
    body: ChatBody,
    runtime: Runtime,
    principal: Principal,
    x_request_id: Annotated[str | None, Header()] = None,
    traceparent: Annotated[str | None, Header()] = None,
) -> Response:
    settings = runtime.settings
    graph_id = body.graph_id or settings.cogni_default_graph_id
    try:
        model = runtime.models.resolve(body.model)
    except UnknownModel as exc:
        CHAT_REQUESTS.labels(outcome="unknown_model").inc()
        raise ApiError(409, "unknown_model", str(exc), defaultModelId=exc.default_model_id) from exc

    estimate = estimate_credits(
        model.id, len(body.message), is_free=model.is_free, markup=settings.user_price_markup_factor
    )
    try:
        await runtime.ledger.preflight(principal.billing_account_id, estimate)
    except InsufficientCredits as exc:
        CHAT_REQUESTS.labels(outcome="insufficient_credits").inc()
        raise ApiError(
            402,
            "insufficient_credits",
            f"this request needs about {exc.required} credits; the balance is {exc.balance}",
            requiredCredits=exc.required,
            balanceCredits=exc.balance,
        ) from exc

    state_key = body.state_key or new_state_key()
    run_id = str(uuid.uuid4())
    request_id = _request_id(x_request_id)
    trace_id = _trace_id(traceparent)
    request = GraphRunRequest(
        graph_id=graph_id,
        model=model.id,
        run=RunContext(run_id=run_id, attempt=0, ingress_request_id=request_id, trace_id=trace_id),
        billing_account_id=principal.billing_account_id,
        virtual_key_id=principal.virtual_key_id,
        state_key=state_key,
        input_messages=[{"role": "user", "content": body.message}],
    )
    headers = {"X-State-Key": state_key, "X-Run-Id": run_id, "X-Request-Id": request_id, "X-Trace-Id": trace_id}
    try:
        result = runtime.executor.run_graph(request)
    except UnknownGraph as exc:
        CHAT_REQUESTS.labels(outcome="unknown_graph").inc()
        raise ApiError(404, "not_found", str(exc), headers=headers) from exc
    run = runtime.relay.start(
        result, run_id=run_id, billing_account_id=principal.billing_account_id, ingress_request_id=request_id
    )
    log.info("chat_run_started", run_id=run_id, graph_id=graph_id, model=model.id, request_id=request_id)

    first: AiEvent | None = None
    try:
        first = await asyncio.wait_for(run.next_ui_event(), timeout=settings.cogni_first_event_timeout_seconds)
    except TimeoutError:
        first = None  # slow first token: start streaming anyway; later failures are events
    if isinstance(first, ErrorEvent):
        CHAT_REQUESTS.labels(outcome=f"failed_{first.error}").inc()
        raise ApiError(STATUS_OF_CODE[first.error], first.error, f"the run failed: {first.error}", headers=headers)
    CHAT_REQUESTS.labels(outcome="streamed").inc()

    async def events() -> AsyncIterator[ServerSentEvent]:
        if first is not None:
            yield _sse(first)
            if first.type == "done":
                return
        async for event in run.ui_events():
            yield _sse(event)

    return EventSourceResponse(events(), headers=headers, ping=10)
