"""The Starlette app: `/v1/chat/completions`, `/v1/embeddings`, `/v1/models`, `/health`."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from cogni_mock_llm.directives import DirectiveError
from cogni_mock_llm.embeddings import EmbeddingRequestError, embeddings_body
from cogni_mock_llm.replies import Plan, RequestError, plan_reply
from cogni_mock_llm.settings import MockSettings
from cogni_mock_llm.wire import ChunkEncoder, completion_body, error_body, new_completion_id, stream_deltas


def _error(status: int, message: str, param: str | None = None) -> JSONResponse:
    return JSONResponse(error_body(status, message, param), status_code=status)


async def _stream(plan: Plan, encoder: ChunkEncoder, delay: float) -> AsyncIterator[bytes]:
    hang_after = plan.directives.hang_after_tokens
    for count, delta in enumerate(stream_deltas(plan)):
        if hang_after is not None and count == hang_after + 1:  # +1: the role chunk is not a token
            await asyncio.sleep(plan.directives.hang_seconds or 0)
        if delay and count:
            await asyncio.sleep(delay)
        yield encoder.delta(delta)
    yield encoder.finish()
    if plan.include_usage:
        yield encoder.usage()
    yield encoder.done()


def create_app(settings: MockSettings | None = None) -> Starlette:
    """Build the mock upstream; `settings` defaults to no delay."""
    config = settings or MockSettings()
    models_body = {
        "object": "list",
        "data": [{"id": m, "object": "model", "created": 0, "owned_by": "cogni-mock"} for m in config.models],
    }

    async def chat_completions(request: Request) -> Response:
        try:
            body = json.loads(await request.body())
        except ValueError:
            return _error(400, "the request body is not valid JSON")
        try:
            plan = plan_reply(body, config)
        except RequestError as exc:
            return _error(400, str(exc), exc.param)
        except DirectiveError as exc:
            return _error(400, str(exc))
        directives = plan.directives
        if directives.hang_seconds is not None and directives.hang_after_tokens is None:
            await asyncio.sleep(directives.hang_seconds)
        if directives.status is not None:
            return _error(directives.status, f"scripted failure: [mock:status={directives.status}]")
        delay_ms = directives.delay_ms if directives.delay_ms is not None else config.token_delay_ms
        delay = delay_ms / 1000.0
        completion_id, created = new_completion_id(), int(time.time())
        if plan.stream:
            encoder = ChunkEncoder(plan, completion_id, created)
            return StreamingResponse(_stream(plan, encoder, delay), media_type="text/event-stream")
        if directives.hang_after_tokens is not None:
            await asyncio.sleep(directives.hang_seconds or 0)
        if delay:
            await asyncio.sleep(delay * plan.completion_tokens)
        return JSONResponse(completion_body(plan, completion_id, created))

    async def embeddings(request: Request) -> Response:
        try:
            return JSONResponse(embeddings_body(json.loads(await request.body())))
        except ValueError as exc:
            param = exc.param if isinstance(exc, EmbeddingRequestError) else None
            message = str(exc) if param else "the request body is not valid JSON"
            return _error(400, message, param)

    async def models(request: Request) -> Response:
        return JSONResponse(models_body)

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    return Starlette(
        routes=[
            Route("/v1/chat/completions", chat_completions, methods=["POST"]),
            Route("/chat/completions", chat_completions, methods=["POST"]),
            Route("/v1/embeddings", embeddings, methods=["POST"]),
            Route("/embeddings", embeddings, methods=["POST"]),
            Route("/v1/models", models, methods=["GET"]),
            Route("/models", models, methods=["GET"]),
            Route("/health", health, methods=["GET"]),
        ]
    )
