"""Translate LangGraph stream chunks into the wire events the official clients expect.

``messages-tuple`` goes out as ``messages`` with ``[chunk, metadata]``; ``messages`` as
``messages/metadata`` + ``messages/partial`` (accumulated) + ``messages/complete``; with
``stream_subgraphs`` every event name gains the namespace: ``values|parent:<task_id>``.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from cogni_ai_core import LLM_KEY_CONFIGURABLE
from cogni_server.serde import dumps

LLM_KEY_MARKER = json.dumps(LLM_KEY_CONFIGURABLE).encode()

WIRE_MODES = frozenset(
    {"values", "updates", "messages", "messages-tuple", "custom", "debug", "tasks", "checkpoints", "events"}
)
_DIRECT = {"values", "updates", "custom", "debug", "tasks", "checkpoints"}

Publish = Callable[[str, bytes], Awaitable[object]]


def langgraph_modes(wire_modes: Sequence[str]) -> list[str]:
    """The LangGraph ``stream_mode`` list for the requested wire modes (always with ``values``)."""
    modes = {"values"}
    for mode in wire_modes:
        if mode in _DIRECT:
            modes.add(mode)
        elif mode in ("messages", "messages-tuple"):
            modes.add("messages")
    return sorted(modes)


class ChunkRouter:
    """Turns one ``(namespace, mode, chunk)`` into zero or more published events."""

    def __init__(self, wire_modes: Sequence[str], publish: Publish) -> None:
        self.wire = set(wire_modes)
        self.publish = publish
        self.last_values: Any = None
        self._messages: dict[str, Any] = {}  # message id -> accumulated chunk (mode "messages")

    @staticmethod
    def _name(base: str, ns: Sequence[str]) -> str:
        return "|".join([base, *ns]) if ns else base

    async def route(self, ns: Sequence[str], mode: str, chunk: Any) -> None:
        if mode == "values" and not ns:
            self.last_values = chunk
        if mode in _DIRECT:
            if mode in self.wire:
                await self.publish(self._name(mode, ns), dumps(chunk))
            return
        if mode == "messages":
            message, meta = chunk
            if "messages-tuple" in self.wire:
                await self.publish(self._name("messages", ns), dumps([message, meta]))
            if "messages" in self.wire:
                await self._messages_mode(ns, message, meta)

    async def _messages_mode(self, ns: Sequence[str], message: Any, meta: Any) -> None:
        msg_id = getattr(message, "id", None) or ""
        is_chunk = type(message).__name__.endswith("Chunk")
        if msg_id not in self._messages:
            await self.publish(self._name("messages/metadata", ns), dumps({msg_id: {"metadata": meta}}))
            self._messages[msg_id] = message
        elif is_chunk:
            self._messages[msg_id] = self._messages[msg_id] + message
        else:
            self._messages[msg_id] = message
        event = "messages/partial" if is_chunk else "messages/complete"
        await self.publish(self._name(event, ns), dumps([self._messages[msg_id]]))


def _without_key(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_key(v) for k, v in value.items() if k != LLM_KEY_CONFIGURABLE}
    if isinstance(value, list):
        return [_without_key(v) for v in value]
    return value


def drop_llm_key(data: bytes) -> bytes:
    """An event's JSON without the run's LLM key: the ``checkpoints`` and ``debug`` modes show a checkpoint's
    whole config, where the worker put the key (``configurable.__cogni_llm_key``). Only events that name the key
    are re-encoded, so the cost is one byte search per event of a run that has a key."""
    if LLM_KEY_MARKER not in data:
        return data
    return dumps(_without_key(json.loads(data)))


def split_ns(ns: Any) -> list[str]:
    """LangGraph namespaces are tuples of ``"node:task_id"`` strings; the wire joins them with ``|``."""
    if not ns:
        return []
    return [str(part) for part in ns]
