"""Thread state through the checkpointer: get, update (as_node), by checkpoint, history.

The graph a thread belongs to is recorded in its metadata (``graph_id``) when its first run is
created; state routes on a thread that never ran answer an empty state.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from langgraph.errors import InvalidUpdateError

from cogni_server.errors import Conflict, Invalid, NotFound
from cogni_server.serde import to_jsonable
from cogni_server.services.context import ServerContext
from cogni_server.storage import purge as purge_repo
from cogni_server.storage import threads as thread_repo


def _checkpoint(config: dict[str, Any] | None) -> dict[str, Any] | None:
    if not config:
        return None
    c = config.get("configurable") or {}
    return {
        "thread_id": c.get("thread_id"),
        "checkpoint_ns": c.get("checkpoint_ns", ""),
        "checkpoint_id": c.get("checkpoint_id"),
        "checkpoint_map": c.get("checkpoint_map"),
    }


def snapshot_out(snapshot: Any) -> dict[str, Any]:
    """A LangGraph StateSnapshot in the wire shape of the SDK's ``ThreadState``."""
    tasks = []
    for task in snapshot.tasks:
        nested = task.state
        tasks.append(
            {
                "id": task.id,
                "name": task.name,
                "path": list(task.path) if getattr(task, "path", None) else [],
                "error": str(task.error) if task.error else None,
                "interrupts": to_jsonable(list(task.interrupts)),
                "checkpoint": _checkpoint(nested) if isinstance(nested, dict) else None,
                "state": snapshot_out(nested) if nested is not None and not isinstance(nested, dict) else None,
                "result": to_jsonable(getattr(task, "result", None)),
            }
        )
    return {
        "values": to_jsonable(snapshot.values),
        "next": list(snapshot.next),
        "tasks": tasks,
        "metadata": to_jsonable(snapshot.metadata or {}),
        "created_at": snapshot.created_at,
        "checkpoint": _checkpoint(snapshot.config),
        "parent_checkpoint": _checkpoint(snapshot.parent_config),
        "interrupts": to_jsonable(list(getattr(snapshot, "interrupts", ()) or ())),
    }


def empty_state(thread_id: uuid.UUID) -> dict[str, Any]:
    return {
        "values": {},
        "next": [],
        "tasks": [],
        "metadata": {},
        "created_at": None,
        "checkpoint": {"thread_id": str(thread_id), "checkpoint_ns": "", "checkpoint_id": None, "checkpoint_map": None},
        "parent_checkpoint": None,
        "interrupts": [],
    }


@asynccontextmanager
async def thread_graph(
    ctx: ServerContext, tenant: str, thread_id: uuid.UUID, access_context: str = "threads.read"
) -> AsyncIterator[tuple[dict[str, Any], Any | None]]:
    """The thread and its graph for one state read or update (a factory is called for it)."""
    async with ctx.pool.connection() as conn:
        thread = await thread_repo.get(conn, tenant, thread_id)
    graph_id = (thread.get("metadata") or {}).get("graph_id")
    if not graph_id or graph_id not in ctx.registry.graph_ids():
        yield thread, None
        return
    config = {"configurable": {"thread_id": str(thread_id)}}
    async with ctx.registry.open(
        graph_id,
        checkpointer=ctx.checkpointer,
        config=config,
        access_context=access_context,
        runtime_store=ctx.store.for_tenant(tenant),
    ) as graph:
        yield thread, graph


def _config(thread_id: uuid.UUID, checkpoint: dict[str, Any] | None = None) -> dict[str, Any]:
    configurable: dict[str, Any] = {"thread_id": str(thread_id)}
    for key in ("checkpoint_ns", "checkpoint_id", "checkpoint_map"):
        if checkpoint and checkpoint.get(key) is not None:
            configurable[key] = checkpoint[key]
    return {"configurable": configurable}


def select_state(state: dict[str, Any], select: list[str] | None) -> dict[str, Any]:
    if not select:
        return state
    out: dict[str, Any] = {}
    for field in select:
        if field.startswith("values."):
            key = field.split(".", 1)[1]
            out.setdefault("values", {})[key] = (state.get("values") or {}).get(key)
        elif field in state:
            out[field] = state[field]
        else:
            raise Invalid(f"unknown state field in select: {field!r}")
    return out


async def get_state(
    ctx: ServerContext, tenant: str, thread_id: uuid.UUID, *, checkpoint: dict[str, Any] | None, subgraphs: bool
) -> dict[str, Any]:
    async with thread_graph(ctx, tenant, thread_id) as (_, graph):
        if graph is None:
            return empty_state(thread_id)
        snapshot = await graph.aget_state(_config(thread_id, checkpoint), subgraphs=subgraphs)
    if checkpoint and checkpoint.get("checkpoint_id") and snapshot.config is None:
        raise NotFound(f"checkpoint {checkpoint['checkpoint_id']} not found")
    if snapshot.config is None:
        return empty_state(thread_id)
    return snapshot_out(snapshot)


async def update_state(
    ctx: ServerContext,
    tenant: str,
    thread_id: uuid.UUID,
    *,
    values: Any,
    as_node: str | None,
    checkpoint: dict[str, Any] | None,
) -> dict[str, Any]:
    guard = purge_repo.checkpoint_write_guard(ctx.pool, tenant)  # a purge starting now waits for this write
    async with guard, thread_graph(ctx, tenant, thread_id, "threads.update") as (thread, graph):
        if graph is None:
            raise Conflict(f"thread {thread_id} has no graph yet: run it once before updating state")
        if thread["status"] == "busy":
            raise Conflict(f"thread {thread_id} is busy with a run")
        config = _config(thread_id, checkpoint)
        config["metadata"] = {"graph_id": (thread.get("metadata") or {}).get("graph_id")}
        try:
            new_config = await graph.aupdate_state(config, values, as_node=as_node)
        except InvalidUpdateError as exc:  # unknown as_node, values of the wrong shape, ambiguous update
            raise Invalid(f"cannot apply this state update: {exc}") from None
        snapshot = await graph.aget_state({"configurable": {"thread_id": str(thread_id)}})
    interrupts = {t.id: to_jsonable(list(t.interrupts)) for t in snapshot.tasks if t.interrupts}
    async with ctx.pool.connection() as conn:
        await thread_repo.set_state_summary(
            conn,
            thread_id,
            values=to_jsonable(snapshot.values),
            interrupts=interrupts,
            status="interrupted" if interrupts else "idle",
        )
    return {"checkpoint": _checkpoint(new_config)}


async def history(
    ctx: ServerContext,
    tenant: str,
    thread_id: uuid.UUID,
    *,
    limit: int,
    before: Any,
    metadata: dict[str, Any] | None,
    checkpoint: dict[str, Any] | None,
) -> list[dict[str, Any]]:
    before_cfg = None
    if isinstance(before, str):
        before_cfg = _config(thread_id, {"checkpoint_id": before})
    elif isinstance(before, dict):
        before_cfg = _config(thread_id, before)
    out = []
    async with thread_graph(ctx, tenant, thread_id) as (_, graph):
        if graph is None:
            return []
        async for snapshot in graph.aget_state_history(
            _config(thread_id, checkpoint), filter=metadata or None, before=before_cfg, limit=limit
        ):
            out.append(snapshot_out(snapshot))
    return out
