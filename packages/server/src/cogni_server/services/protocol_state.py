"""The state and tree commands of the thread-streaming protocol (``state.get``,
``state.listCheckpoints``, ``agent.getTree``), plus the errors and the thread check every command uses."""

from __future__ import annotations

import uuid
from typing import Any

from cogni_server.errors import NotFound
from cogni_server.serde import loads
from cogni_server.services import state as state_service
from cogni_server.services.context import ServerContext
from cogni_server.storage import thread_events
from cogni_server.storage import threads as thread_repo

NO_RUN = "No active run is bound to this thread."
_RUN_STATUS = {
    "pending": "started",
    "running": "running",
    "success": "completed",
    "error": "failed",
    "timeout": "failed",
    "interrupted": "interrupted",
}
_TERMINAL = frozenset({"completed", "failed", "interrupted"})


class ProtocolError(Exception):
    """A command failed: ``code`` is one of the protocol's error codes."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class ThreadNotFound(NotFound):
    """The command's thread is another tenant's (or, for commands that need one, missing): 404."""


async def own_thread(ctx: ServerContext, tenant: str, thread_id: uuid.UUID) -> dict[str, Any]:
    """The tenant's thread row; ThreadNotFound for a missing or another tenant's thread."""
    thread = await maybe_own_thread(ctx, tenant, thread_id)
    if thread is None:
        raise ThreadNotFound(f"thread {thread_id} not found")
    return thread


async def maybe_own_thread(ctx: ServerContext, tenant: str, thread_id: uuid.UUID) -> dict[str, Any] | None:
    """The tenant's thread row, None when it does not exist; ThreadNotFound for another tenant's."""
    async with ctx.pool.connection() as conn:
        owner = await thread_events.owner_of(conn, thread_id)
        if owner is None:
            return None
        if owner != tenant:
            raise ThreadNotFound(f"thread {thread_id} not found")
        return await thread_repo.get(conn, tenant, thread_id)


def _only(params: dict[str, Any], allowed: set[str], method: str) -> None:
    unknown = sorted(set(params) - allowed)
    if unknown:
        raise ProtocolError("invalid_argument", f"{method}: unknown param(s) {', '.join(unknown)}")


def _namespace(params: dict[str, Any], method: str, *, required: bool) -> list[str]:
    ns = params.get("namespace")
    if ns is None and not required:
        return []
    if not isinstance(ns, list) or not all(isinstance(seg, str) for seg in ns):
        raise ProtocolError("invalid_argument", f"{method}: namespace must be an array of strings")
    return ns


def _descend(state: dict[str, Any], namespace: list[str]) -> dict[str, Any] | None:
    """The nested state of a subgraph namespace (``node:task_id`` segments, or bare node names)."""
    for segment in namespace:
        found = None
        for task in state.get("tasks") or ():
            label = f"{task.get('name')}:{task.get('id')}"
            if (segment == label or (":" not in segment and segment == task.get("name"))) and task.get("state"):
                found = task["state"]
                break
        if found is None:
            return None
        state = found
    return state


async def state_get(ctx: ServerContext, tenant: str, thread_id: uuid.UUID, params: dict[str, Any]) -> dict[str, Any]:
    _only(params, {"namespace", "keys"}, "state.get")
    namespace = _namespace(params, "state.get", required=False)
    keys = params.get("keys")
    if keys is not None and (not isinstance(keys, list) or not all(isinstance(k, str) for k in keys)):
        raise ProtocolError("invalid_argument", "state.get: keys must be an array of strings")
    await own_thread(ctx, tenant, thread_id)
    state: dict[str, Any] | None = await state_service.get_state(
        ctx, tenant, thread_id, checkpoint=None, subgraphs=bool(namespace)
    )
    if namespace:
        state = _descend(state or {}, namespace)
        if state is None:
            raise ProtocolError("no_such_namespace", f"No state for namespace {namespace!r} on this thread.")
    values = state.get("values") if state else {}
    if keys is not None and isinstance(values, dict):
        values = {k: v for k, v in values.items() if k in keys}
    result: dict[str, Any] = {"values": values if values is not None else {}}
    checkpoint = (state or {}).get("checkpoint") or {}
    if checkpoint.get("checkpoint_id"):
        ref = {"id": checkpoint["checkpoint_id"]}
        if checkpoint.get("checkpoint_ns"):
            ref["ns"] = checkpoint["checkpoint_ns"]
        result["checkpoint"] = ref
    return result


async def require_checkpoint(ctx: ServerContext, tenant: str, thread_id: uuid.UUID, checkpoint_id: str) -> None:
    """no_such_checkpoint unless the thread (already checked to be the tenant's) has that root checkpoint."""
    config = {"configurable": {"thread_id": str(thread_id), "checkpoint_ns": "", "checkpoint_id": checkpoint_id}}
    if await ctx.checkpointer.aget_tuple(config) is None:
        raise ProtocolError("no_such_checkpoint", f"Unknown checkpoint: {checkpoint_id}")


async def list_checkpoints(
    ctx: ServerContext, tenant: str, thread_id: uuid.UUID, params: dict[str, Any]
) -> dict[str, Any]:
    _only(params, {"namespace", "limit", "before"}, "state.listCheckpoints")
    namespace = _namespace(params, "state.listCheckpoints", required=False)
    limit = params.get("limit", 10)
    if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= 1000:
        raise ProtocolError("invalid_argument", "state.listCheckpoints: limit must be an integer from 1 to 1000")
    before = params.get("before")
    if before is not None and not isinstance(before, str):
        raise ProtocolError("invalid_argument", "state.listCheckpoints: before must be a checkpoint id")
    await own_thread(ctx, tenant, thread_id)
    if before is not None and not namespace:
        await require_checkpoint(ctx, tenant, thread_id, before)
    checkpoint = {"checkpoint_ns": "|".join(namespace)} if namespace else None
    try:
        states = await state_service.history(
            ctx, tenant, thread_id, limit=limit, before=before, metadata=None, checkpoint=checkpoint
        )
    except ValueError as exc:  # LangGraph: no such subgraph
        raise ProtocolError("no_such_namespace", f"No checkpoints for namespace {namespace!r}: {exc}") from None
    summaries = []
    for state in states:
        metadata = state.get("metadata") or {}
        summary: dict[str, Any] = {
            "id": (state.get("checkpoint") or {}).get("checkpoint_id"),
            "timestamp": state.get("created_at"),
            "step": metadata.get("step", 0),
            "metadata": metadata,
        }
        writes = metadata.get("writes")
        if isinstance(writes, dict) and len(writes) == 1:
            summary["node_name"] = next(iter(writes))
        summaries.append(summary)
    return {"checkpoints": summaries}


async def agent_tree(ctx: ServerContext, tenant: str, thread_id: uuid.UUID, params: dict[str, Any]) -> dict[str, Any]:
    _only(params, {"run_id"}, "agent.getTree")
    raw = params.get("run_id")
    await own_thread(ctx, tenant, thread_id)
    async with ctx.pool.connection() as conn:
        if raw is None:
            run = await thread_events.latest_run(conn, thread_id)
        else:
            try:
                run = await thread_events.run_of_thread(conn, thread_id, uuid.UUID(str(raw)))
            except ValueError:
                run = None
    if run is None:
        raise ProtocolError("no_such_run", NO_RUN if raw is None else f"No run {raw} on this thread.")
    status = _RUN_STATUS.get(run["status"], "running")
    if run["status"] == "interrupted" and run.get("cancel_reason"):
        status = "failed"  # cancelled, not paused
    tree: dict[str, Any] = {"namespace": [], "status": status, "graph_name": run["graph_id"]}
    children = await _subgraphs(ctx, str(thread_id), run["run_id"])
    if children:
        tree["children"] = children
    return {"tree": tree}


async def _subgraphs(ctx: ServerContext, thread_id: str, run_id: str) -> list[dict[str, Any]]:
    """The run's subgraphs from its lifecycle events on the thread log, nested by namespace."""
    start = await ctx.thread_log.run_start(thread_id, run_id)
    if start is None:
        return []
    nodes: dict[tuple[str, ...], dict[str, Any]] = {}
    for event in await ctx.thread_log.read_range(thread_id, start - 1):
        if event.channel != "lifecycle":
            continue
        data = loads(event.data)["params"]["data"]
        if not event.namespace:
            if data.get("run_id") != run_id and data.get("event") == "running":
                break  # the next run
            if data.get("run_id") == run_id and data.get("event") in _TERMINAL:
                break
            continue
        node = nodes.setdefault(event.namespace, {"namespace": list(event.namespace), "status": "started"})
        node["status"] = data.get("event") if data.get("event") in _RUN_STATUS.values() else node["status"]
        if data.get("graph_name"):
            node["graph_name"] = data["graph_name"]
    roots: list[dict[str, Any]] = []
    for key in sorted(nodes, key=len):
        node = nodes[key]
        node.setdefault("graph_name", key[-1].split(":", 1)[0])
        parent = next((nodes[key[:i]] for i in range(len(key) - 1, 0, -1) if key[:i] in nodes), None)
        (parent.setdefault("children", []) if parent is not None else roots).append(node)
    return roots
