"""Custom auth (langgraph.json ``auth``) for MCP and A2A: the same ``@auth.on`` handlers as the REST
API, so a tool call or an A2A message is allowed, denied or filtered exactly as the run it becomes.

- a tool list is an ``assistants.search`` (its filters hide assistants), a tool call a stateless
  ``threads.create_run``;
- an A2A message is a ``threads.create_run`` on its context's thread (which must match the handler's
  filters if it exists), ``tasks/get`` a ``threads.read`` and ``tasks/cancel`` a ``threads.update`` of
  the task's thread; the agent card is an ``assistants.read``.

Without custom auth every function returns at once (the built-in modes have no handlers).
"""

from __future__ import annotations

from typing import Any

from cogni_server.auth import Principal
from cogni_server.services import a2a_tasks, authz
from cogni_server.services.context import ServerContext


def _create_run_value(thread_id: Any, assistant_id: str) -> dict[str, Any]:
    return {
        "thread_id": thread_id,
        "assistant_id": assistant_id,
        "run_id": None,
        "status": "pending",
        "metadata": {},
        "prevent_insert_if_inflight": True,
        "multitask_strategy": "enqueue",
        "if_not_exists": "create",
        "after_seconds": 0,
        "kwargs": {},
        "action": None,
    }


async def tool_filter(ctx: ServerContext, who: Principal) -> tuple[dict[str, Any] | None, bool]:
    """The metadata filter of the caller's tool list; ``(_, False)`` when nothing can match."""
    if not authz.enabled(ctx):
        return None, True
    value: dict[str, Any] = {"metadata": {}, "graph_id": None, "limit": 1000, "offset": 0}
    return await authz.search_filter(ctx, who, "assistants", value, None)


async def may_call_tool(ctx: ServerContext, who: Principal, assistant_id: str) -> None:
    if authz.enabled(ctx):
        await authz.authorize(ctx, who, "threads", "create_run", _create_run_value(None, assistant_id))


async def may_read_assistant(ctx: ServerContext, who: Principal, assistant_id: str) -> None:
    if authz.enabled(ctx):
        filters = await authz.authorize(ctx, who, "assistants", "read", {"assistant_id": assistant_id})
        await authz.check_assistant(ctx, who, assistant_id, filters)


async def may_send(
    ctx: ServerContext, who: Principal, assistant_id: str, context_id: str | None
) -> dict[str, Any] | None:
    """A message starts a run on its context's thread (a new thread when it names none); returns the
    metadata the handler set, for the run and a thread it creates (as on ``POST /threads/{id}/runs``)."""
    if not authz.enabled(ctx):
        return None
    thread_id = a2a_tasks.context_thread(context_id) if context_id else None
    value = _create_run_value(thread_id, assistant_id)
    filters = await authz.authorize(ctx, who, "threads", "create_run", value)
    await authz.check_thread_if_exists(ctx, who, thread_id, filters)
    return dict(value.get("metadata") or {}) or None


async def may_touch_task(ctx: ServerContext, who: Principal, assistant_id: str, task_id: str, action: str) -> None:
    """``read`` (tasks/get) or ``update`` (tasks/cancel) of the thread the task runs on."""
    if not authz.enabled(ctx):
        return
    run = await a2a_tasks.owned_run(ctx, who.tenant, assistant_id, task_id)
    filters = await authz.authorize(
        ctx, who, "threads", action, {"thread_id": run["thread_id"], "run_id": run["run_id"]}
    )
    await authz.check_thread(ctx, who, run["thread_id"], filters)
