"""Assembles streamed tool calls: buffers partial arguments until they parse, pairs results with starts.

Caps (from the contract): 64 KB of arguments per call and 100 pending entries (calls waiting for
their arguments plus results waiting for their start). Overflow is logged and counted, never fatal.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import structlog

from cogni_ai_core import ToolCallResult, ToolCallStart
from cogni_app.executors.metrics import TOOL_STREAM_OVERFLOW

MAX_ARGS_BYTES = 64 * 1024
MAX_PENDING = 100
TRUNCATED_ARGS: dict[str, Any] = {"_truncated": True}

log = structlog.get_logger(__name__)


@dataclass
class _Partial:
    key: str
    tool_call_id: str | None = None
    name: str | None = None
    args_text: str = ""
    overflowed: bool = False


@dataclass
class ToolCallAssembler:
    """Turns tool call chunks, complete tool calls and tool results into start/result events."""

    _partials: dict[str, _Partial] = field(default_factory=dict)
    _started: dict[str, ToolCallStart] = field(default_factory=dict)
    _results_seen: set[str] = field(default_factory=set)
    _waiting_results: dict[str, ToolCallResult] = field(default_factory=dict)

    @property
    def started(self) -> list[ToolCallStart]:
        return list(self._started.values())

    def _pending_count(self) -> int:
        return len(self._partials) + len(self._waiting_results)

    def on_chunk(self, message_id: str, chunk: dict[str, Any]) -> list[ToolCallStart | ToolCallResult]:
        """One `tool_call_chunks` entry of an AI message chunk (id/name only on the first piece)."""
        index = chunk.get("index")
        key = f"{message_id}:{index if index is not None else chunk.get('id')}"
        partial = self._partials.get(key)
        if partial is None:
            if chunk.get("id") and str(chunk["id"]) in self._started:
                return []
            if self._pending_count() >= MAX_PENDING:
                self._overflow("pending", tool_call_id=chunk.get("id"))
                return []
            partial = self._partials[key] = _Partial(key=key)
        if chunk.get("id"):
            partial.tool_call_id = str(chunk["id"])
        if chunk.get("name"):
            partial.name = str(chunk["name"])
        piece = chunk.get("args") or ""
        if isinstance(piece, dict):  # some providers send parsed args
            piece = json.dumps(piece)
        if partial.overflowed:
            return []
        partial.args_text += str(piece)
        if len(partial.args_text.encode()) > MAX_ARGS_BYTES:
            partial.overflowed = True
            partial.args_text = ""
            self._overflow("args", tool_call_id=partial.tool_call_id)
            return self._start(partial, dict(TRUNCATED_ARGS))
        return self._try_start(partial)

    def on_complete_call(self, call: dict[str, Any]) -> list[ToolCallStart | ToolCallResult]:
        """A complete tool call (`tool_calls` of a non-streamed AI message)."""
        call_id = call.get("id")
        if not call_id or str(call_id) in self._started:
            return []
        for partial in self._partials.values():
            if partial.tool_call_id == call_id:
                args = call.get("args") if isinstance(call.get("args"), dict) else None
                return self._start(partial, args if args is not None else dict(TRUNCATED_ARGS))
        args = call.get("args")
        encoded = json.dumps(args, default=str) if args is not None else ""
        if len(encoded.encode()) > MAX_ARGS_BYTES:
            self._overflow("args", tool_call_id=call_id)
            args = dict(TRUNCATED_ARGS)
        partial = _Partial(key=f"complete:{call_id}", tool_call_id=str(call_id), name=str(call.get("name") or ""))
        return self._start(partial, args if isinstance(args, dict) else {})

    def on_result(self, tool_call_id: str, result: ToolCallResult) -> list[ToolCallStart | ToolCallResult]:
        """A tool's result: emitted after its start (held until then, within the pending cap)."""
        if tool_call_id in self._results_seen:
            return []
        out: list[ToolCallStart | ToolCallResult] = []
        for partial in list(self._partials.values()):
            if partial.tool_call_id == tool_call_id:  # args never parsed: start with what we have
                out.extend(self._start(partial, _parse_args(partial.args_text) or {}))
        if tool_call_id in self._started:
            self._results_seen.add(tool_call_id)
            out.append(result)
            return out
        if self._pending_count() >= MAX_PENDING:
            self._overflow("pending", tool_call_id=tool_call_id)
            return []
        self._waiting_results[tool_call_id] = result
        return []

    def flush(self) -> list[ToolCallStart | ToolCallResult]:
        """End of stream: start what never parsed (with best-effort args), release held results."""
        out: list[ToolCallStart | ToolCallResult] = []
        for partial in list(self._partials.values()):
            if partial.tool_call_id:
                out.extend(self._start(partial, _parse_args(partial.args_text) or {}))
        self._partials.clear()
        for call_id, result in list(self._waiting_results.items()):
            out.append(ToolCallStart(tool_call_id=call_id, tool_name="unknown", args={}))
            self._started[call_id] = out[-1]  # type: ignore[assignment]
            self._results_seen.add(call_id)
            out.append(result)
        self._waiting_results.clear()
        return out

    def _try_start(self, partial: _Partial) -> list[ToolCallStart | ToolCallResult]:
        if not partial.tool_call_id or not partial.name:
            return []
        args = _parse_args(partial.args_text)
        if args is None:
            return []
        return self._start(partial, args)

    def _start(self, partial: _Partial, args: dict[str, Any]) -> list[ToolCallStart | ToolCallResult]:
        self._partials.pop(partial.key, None)
        call_id = partial.tool_call_id
        if not call_id or call_id in self._started:
            return []
        start = ToolCallStart(tool_call_id=call_id[:128], tool_name=partial.name or "unknown", args=args)
        self._started[call_id] = start
        out: list[ToolCallStart | ToolCallResult] = [start]
        waiting = self._waiting_results.pop(call_id, None)
        if waiting is not None:
            self._results_seen.add(call_id)
            out.append(waiting)
        return out

    def _overflow(self, kind: str, *, tool_call_id: object) -> None:
        TOOL_STREAM_OVERFLOW.labels(kind=kind).inc()
        log.warning("tool_stream_overflow", kind=kind, tool_call_id=tool_call_id)


def _parse_args(text: str) -> dict[str, Any] | None:
    """Parsed arguments once the JSON is complete; an empty string is a call without arguments."""
    if not text.strip():
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None
