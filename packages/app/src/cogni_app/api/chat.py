"""`POST /v1/chat`: parse and authorise, hand the message to the chat use case, stream its AiEvents as SSE.

Before the stream starts, failures are HTTP statuses (400, 401, 402, 404, 408, 409, 429, 503; see
errors.py); the use case awaits the first event so that a run that fails at once still gets a status.
After that, failures are `error` then `done` events. The run is owned by the relay, not by this request.
"""

from __future__ import annotations

import re
import uuid
from typing import Annotated

import orjson
from fastapi import APIRouter, Header
from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic.alias_generators import to_camel
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.responses import Response

from cogni_ai_core import AiEvent, InvalidGraphId, InvalidStateKey, parse_graph_id, validate_state_key
from cogni_ai_core.observability import current_trace_id
from cogni_app.api.deps import Principal, Runtime
from cogni_app.api.encode import run_headers
from cogni_app.api.metrics import CHAT_REQUESTS
from cogni_app.services import STREAMED, ChatCommand, outcome_of

router = APIRouter()
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
    command = ChatCommand(
        billing_account_id=principal.billing_account_id,
        virtual_key_id=principal.virtual_key_id,
        message=body.message,
        state_key=body.state_key,
        graph_id=body.graph_id,
        model=body.model,
        request_id=_request_id(x_request_id),
        trace_id=current_trace_id() or _trace_id(traceparent),  # tracing on: this request's trace
    )
    try:
        started = await runtime.services.chat.start(command)
    except Exception as exc:
        outcome = outcome_of(exc)
        if outcome is not None:
            CHAT_REQUESTS.labels(outcome=outcome).inc()
        raise  # mapped to its status in errors.py
    CHAT_REQUESTS.labels(outcome=STREAMED).inc()
    return EventSourceResponse((_sse(e) async for e in started.events()), headers=run_headers(started.ids), ping=10)
