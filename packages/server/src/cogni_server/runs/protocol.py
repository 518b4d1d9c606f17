"""Thread-streaming protocol events from a run: the envelope, the v3 conversion and the v1 mirror.

Runs started through the protocol (``run.start``, ``input.respond``, ``state.fork``) execute with
LangGraph's own converter (``astream_events(version="v3")``), which produces the protocol's message,
tool and subgraph-lifecycle events; ``to_wire`` fixes what it leaves to the server (namespaces of
lifecycle events, ``custom:<name>`` channels, checkpoint payloads, the ``(event, metadata)`` message
tuples, the ``tasks`` it suppresses). Runs created over REST keep the v1 execution untouched and only
mirror their cheap chunks (values, updates, custom, checkpoints, tasks; no per-token messages) onto the
thread log (``RunTracker.mirror``).
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any

from langgraph.stream import StreamTransformer

from cogni_server.serde import dumps
from cogni_server.streaming.thread_log import PendingEvent, channel_of

if TYPE_CHECKING:
    from cogni_server.runs.lifecycle import RunTracker

V3_MODES = ("values", "updates", "messages", "custom", "checkpoints", "tasks", "tools")
_PASS_THROUGH = frozenset({"values", "updates", "custom", "tasks", "tools"})

warnings.filterwarnings("ignore", message=".*v3 streaming protocol.*")


def now_ms() -> int:
    return int(time.time() * 1000)


def pending(method: str, namespace: Sequence[str], data: Any, timestamp: int | None = None) -> PendingEvent:
    """One protocol event, serialised once (the log numbers it and stores these bytes)."""
    ns = tuple(str(part) for part in namespace)
    ts = timestamp if isinstance(timestamp, int) else now_ms()
    tail = b"".join(
        (
            b'"method":',
            dumps(method),
            b',"params":{"namespace":',
            dumps(list(ns)),
            b',"timestamp":',
            str(ts).encode(),
            b',"data":',
            dumps(data),
            b"}}",
        )
    )
    return PendingEvent(method, channel_of(method, data), ns, tail)


def checkpoint_payload(chunk: Any) -> dict[str, Any]:
    """LangGraph's ``checkpoints`` chunk (a StateSnapshot-like dict) as the protocol's Checkpoint."""
    if not isinstance(chunk, dict):
        return {"id": None, "step": None, "source": None}
    conf = (chunk.get("config") or {}).get("configurable") or {}
    parent = (chunk.get("parent_config") or {}).get("configurable") or {}
    meta = chunk.get("metadata") or {}
    out: dict[str, Any] = {"id": conf.get("checkpoint_id"), "step": meta.get("step"), "source": meta.get("source")}
    if parent.get("checkpoint_id"):
        out["parent_id"] = parent["checkpoint_id"]
    return out


class TasksTap(StreamTransformer):
    """Asks the graph for every protocol stream mode and keeps the root ``tasks`` events that
    LangGraph's lifecycle transformer hides from the main log (they finish subgraph handles)."""

    required_stream_modes = V3_MODES

    def __init__(self, scope: tuple[str, ...] = (), *, sink: list[dict[str, Any]] | None = None) -> None:
        super().__init__(scope)
        self._sink = sink

    def init(self) -> dict[str, Any]:
        return {}

    def process(self, event: Any) -> bool:
        if self._sink is not None and not tuple(self.scope) and event.get("method") == "tasks":
            self._sink.append(event)
        return True


def to_wire(event: dict[str, Any], started: dict[tuple[str, ...], str]) -> tuple[str, list[str], Any, Any] | None:
    """One v3 event as ``(method, namespace, data, timestamp)``; None for what is not protocol."""
    method = event.get("method")
    params = event.get("params") or {}
    ns = [str(p) for p in params.get("namespace") or ()]
    data = params.get("data")
    timestamp = params.get("timestamp")
    if method == "messages":
        payload, meta = data if isinstance(data, (tuple, list)) and len(data) == 2 else (data, None)
        if not (isinstance(payload, dict) and "event" in payload):
            return None  # a whole message a node returned: no protocol events for it
        data = dict(payload)
        node = meta.get("langgraph_node") if isinstance(meta, dict) else None
        if data.get("event") == "message-start" and node and "metadata" not in data:
            data["metadata"] = {"langgraph_node": node}
    elif method == "lifecycle":  # forwarded at the root with the real namespace inside the data
        data = dict(data or {})
        ns = [str(p) for p in data.pop("namespace", None) or ns]
        key = tuple(ns)
        if data.get("event") == "started" and data.get("graph_name"):
            started[key] = str(data["graph_name"])
        elif key in started:
            data.setdefault("graph_name", started[key])
        if data.get("event") == "drained":
            data["event"] = "interrupted"
    elif isinstance(method, str) and method.startswith("custom:"):
        method, data = "custom", {"name": method[len("custom:") :], "payload": data}
    elif method == "checkpoints":
        data = checkpoint_payload(data)
    elif method not in _PASS_THROUGH:
        return None  # debug and anything else that is not a protocol channel
    return str(method), ns, data, timestamp


PublishV1 = Callable[[str, bytes], Awaitable[None]]


async def run_v3(
    graph: Any,
    graph_input: Any,
    config: dict[str, Any],
    options: dict[str, Any],
    tracker: RunTracker,
    publish_v1: PublishV1,
) -> RunTracker:
    """Execute a protocol run: every v3 event onto the thread log, root values onto the v1 stream."""
    tasks: list[dict[str, Any]] = []
    started: dict[tuple[str, ...], str] = {}

    def tap(scope: tuple[str, ...]) -> TasksTap:
        return TasksTap(scope, sink=tasks)

    def drain_tasks() -> None:
        while tasks:
            converted = to_wire(tasks.pop(0), started)
            if converted is not None:
                tracker.emit(*converted)

    stream = await graph.astream_events(graph_input, config, version="v3", transformers=[tap], **options)
    async with stream:
        async for event in stream:
            drain_tasks()
            params = event.get("params") or {}
            namespace = [str(p) for p in params.get("namespace") or ()]
            for intr in params.get("interrupts") or ():
                tracker.saw_interrupt(namespace, getattr(intr, "id", None), getattr(intr, "value", None))
            converted = to_wire(event, started)
            if converted is None:
                continue
            method, ns, data, timestamp = converted
            tracker.emit(method, ns, data, timestamp)
            if method == "values" and not ns:
                tracker.root_values = data
                await publish_v1("values", dumps(data))
        drain_tasks()
    return tracker
