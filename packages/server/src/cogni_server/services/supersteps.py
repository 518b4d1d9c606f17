"""``supersteps`` on ``POST /threads``: seed a new thread's history, one checkpoint per superstep.

The SDK body is ``[{"updates": [{"values": ..., "command": null, "as_node": "node"}]}, ...]``; the
graph is the one named by ``metadata.graph_id``. The whole list is checked before the thread is
created, and a failure while applying removes the thread again, so the request is all or nothing.
"""

from __future__ import annotations

import uuid
from contextlib import AsyncExitStack
from typing import Any

from langgraph.errors import InvalidUpdateError
from langgraph.types import StateUpdate

from cogni_server.errors import Invalid
from cogni_server.serde import to_jsonable
from cogni_server.services.context import ServerContext
from cogni_server.storage import checkpoints as checkpoint_repo
from cogni_server.storage import threads as thread_repo

SPECIAL_NODES = ("__input__", "__start__", "__copy__")


def _update(raw: Any, where: str, nodes: set[str]) -> StateUpdate:
    if not isinstance(raw, dict):
        raise Invalid(f"{where} must be an object with values and as_node")
    if unknown := set(raw) - {"values", "command", "as_node"}:
        raise Invalid(f"{where}: unknown field(s) {sorted(unknown)}")
    as_node = raw.get("as_node")
    if not isinstance(as_node, str) or not as_node:
        raise Invalid(f"{where}.as_node is required (a node of the graph, or __input__)")
    if as_node not in nodes:
        raise Invalid(f"{where}.as_node: node {as_node!r} does not exist (have {sorted(nodes)})")
    values, command = raw.get("values"), raw.get("command")
    if command is not None:
        if values is not None:
            raise Invalid(f"{where}: give values or command, not both")
        if not isinstance(command, dict) or set(command) - {"update"} or "update" not in command:
            raise Invalid(f"{where}.command: only {{'update': ...}} is supported in supersteps (not goto/resume)")
        values = command["update"]
    return StateUpdate(values, as_node)


async def parse(
    ctx: ServerContext, supersteps: list[Any], metadata: dict[str, Any], stack: AsyncExitStack, tenant: str
) -> tuple[Any, list[Any]]:
    """The graph (open on ``stack`` until the seeding is done) and the ``abulk_update_state``
    argument, or a 422 naming the first problem."""
    graph_id = metadata.get("graph_id")
    if not isinstance(graph_id, str) or not graph_id:
        raise Invalid("supersteps need metadata.graph_id: the graph whose state they seed")
    graph = await stack.enter_async_context(  # 404 if unknown
        ctx.registry.open(
            graph_id,
            checkpointer=ctx.checkpointer,
            config={"configurable": {}},
            access_context="threads.update",
            runtime_store=ctx.store.for_tenant(tenant),
        )
    )
    nodes = set(graph.nodes) | set(SPECIAL_NODES)
    steps: list[list[StateUpdate]] = []
    for i, step in enumerate(supersteps):
        where = f"supersteps[{i}]"
        if not isinstance(step, dict) or set(step) != {"updates"} or not isinstance(step["updates"], list):
            raise Invalid(f"{where} must be {{'updates': [...]}}")
        if not step["updates"]:
            raise Invalid(f"{where}.updates is empty")
        steps.append([_update(u, f"{where}.updates[{j}]", nodes) for j, u in enumerate(step["updates"])])
    return graph, steps


async def apply(ctx: ServerContext, graph: Any, thread_id: uuid.UUID, graph_id: str, steps: list[Any]) -> None:
    """Write the supersteps as checkpoints and the thread's state summary; on failure remove the
    thread (it was created by this request) and answer 422."""
    config = {"configurable": {"thread_id": str(thread_id), "checkpoint_ns": ""}, "metadata": {"graph_id": graph_id}}
    try:
        await graph.abulk_update_state(config, steps)
        snapshot = await graph.aget_state({"configurable": {"thread_id": str(thread_id)}})
    except (InvalidUpdateError, ValueError, TypeError, KeyError) as exc:
        async with ctx.pool.connection() as conn:
            await thread_repo.delete_any(conn, thread_id)
            await checkpoint_repo.delete_thread(conn, thread_id)
        raise Invalid(f"cannot apply the supersteps: {exc}") from None
    interrupts = {t.id: to_jsonable(list(t.interrupts)) for t in snapshot.tasks if t.interrupts}
    async with ctx.pool.connection() as conn:
        await thread_repo.set_state_summary(
            conn,
            thread_id,
            values=to_jsonable(snapshot.values),
            interrupts=interrupts,
            status="interrupted" if interrupts else "idle",
        )
