"""OpenAI wire shapes for a planned reply: the JSON body, SSE chunks and error bodies."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from typing import Any

from cogni_mock_llm.replies import Plan

ARGUMENT_PIECE = 8  # characters of tool-call arguments per streamed delta
_PIECES = re.compile(r"\s*\S+")
_ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
                404: "not_found_error", 429: "rate_limit_error"}  # fmt: skip


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def new_completion_id() -> str:
    """A fresh provider response id (unique per call, like a real provider's)."""
    return f"chatcmpl-{uuid.uuid4().hex}"


def usage(plan: Plan) -> dict[str, int]:
    completion = plan.completion_tokens
    return {
        "prompt_tokens": plan.prompt_tokens,
        "completion_tokens": completion,
        "total_tokens": plan.prompt_tokens + completion,
    }


def error_body(status: int, message: str, param: str | None = None) -> dict[str, Any]:
    """An OpenAI-style error object, which LiteLLM maps to its own exception classes."""
    kind = _ERROR_TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")
    # Like OpenAI: 429 carries a code, 5xx carry none (so LiteLLM reports the HTTP status instead).
    code = "rate_limit_exceeded" if status == 429 else (None if status >= 500 else kind)
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


def completion_body(plan: Plan, completion_id: str, created: int) -> dict[str, Any]:
    """The non-streaming `chat.completion` object."""
    message: dict[str, Any] = {"role": "assistant", "content": plan.text}
    if plan.tool_calls:
        message["content"] = None
        message["tool_calls"] = [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
            for c in plan.tool_calls
        ]
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": created,
        "model": plan.model,
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": plan.finish_reason}],
        "usage": usage(plan),
    }


def text_pieces(text: str) -> list[str]:
    """Split text into one piece per whitespace token; the pieces concatenate back to the text."""
    pieces = _PIECES.findall(text)
    consumed = sum(len(p) for p in pieces)
    if consumed < len(text):  # trailing whitespace rides on the last piece
        if pieces:
            pieces[-1] += text[consumed:]
        else:
            pieces = [text]
    return pieces


def stream_deltas(plan: Plan) -> Iterator[dict[str, Any]]:
    """The `delta` objects of the streamed answer, one per token or argument piece."""
    if not plan.tool_calls:
        yield {"role": "assistant", "content": ""}
        for piece in text_pieces(plan.text or ""):
            yield {"content": piece}
        return
    for index, call in enumerate(plan.tool_calls):
        head = {"index": index, "id": call.id, "type": "function",
                "function": {"name": call.name, "arguments": ""}}  # fmt: skip
        yield {"role": "assistant", "content": None, "tool_calls": [head]} if index == 0 else {"tool_calls": [head]}
        for start in range(0, len(call.arguments), ARGUMENT_PIECE):
            piece = call.arguments[start : start + ARGUMENT_PIECE]
            yield {"tool_calls": [{"index": index, "function": {"arguments": piece}}]}


class ChunkEncoder:
    """Encodes SSE chunks with a precomputed prefix, so streaming costs one small dumps per token."""

    def __init__(self, plan: Plan, completion_id: str, created: int) -> None:
        self.plan = plan
        self._head = (
            f'data: {{"id":{_dumps(completion_id)},"object":"chat.completion.chunk",'
            f'"created":{created},"model":{_dumps(plan.model)},"choices":'
        )

    def delta(self, delta: dict[str, Any]) -> bytes:
        return f'{self._head}[{{"index":0,"delta":{_dumps(delta)},"finish_reason":null}}]}}\n\n'.encode()

    def finish(self) -> bytes:
        reason = _dumps(self.plan.finish_reason)
        return f'{self._head}[{{"index":0,"delta":{{}},"finish_reason":{reason}}}]}}\n\n'.encode()

    def usage(self) -> bytes:
        return f'{self._head}[],"usage":{_dumps(usage(self.plan))}}}\n\n'.encode()

    @staticmethod
    def done() -> bytes:
        return b"data: [DONE]\n\n"
