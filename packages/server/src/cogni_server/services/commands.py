"""The thread-streaming commands (``POST /threads/{id}/commands`` and the WebSocket): one dispatcher.

A command is ``{"id": int, "method": str, "params": {...}}``; the reply is the protocol's
``{"type": "success", "id", "result", "meta": {"applied_through_seq"}}`` or
``{"type": "error", "id", "error": <code>, "message"}``. Every failure of the command itself is an
error reply (HTTP 200, so the clients read its code); only another tenant's thread escapes as
``ThreadNotFound`` (404), like every other route.

``applied_through_seq`` is the thread's event high-water mark when the command took effect: for a
command that starts a run, read before the run is created, so the run's events are exactly those
after it (the Python client opens its streams with ``since`` = this value).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from cogni_server.errors import Conflict, Forbidden, Invalid, NotFound
from cogni_server.services import protocol_state
from cogni_server.services.assistants import resolve_assistant
from cogni_server.services.context import ServerContext
from cogni_server.services.protocol_state import ProtocolError, ThreadNotFound, maybe_own_thread, own_thread
from cogni_server.services.run_request import RunCommand, RunRequest
from cogni_server.services.runs import create_run
from cogni_server.storage import thread_events

log = logging.getLogger("cogni_server.commands")

ENVELOPE_MESSAGE = "Protocol commands must include an integer id and string method."
STRATEGIES = ("reject", "interrupt", "rollback", "enqueue")
_RUN_START_KEYS = frozenset(
    {"assistant_id", "input", "config", "metadata", "langsmith_tracer", "multitask_strategy", "multitaskStrategy"}
)
_RESPOND_KEYS = frozenset(
    {"interrupt_id", "namespace", "response", "responses", "update", "goto", "config", "metadata", "strict_resume"}
)

Result = tuple[dict[str, Any], int | None]  # the result and, for run-starting commands, the seq before the run


@dataclass(frozen=True)
class Caller:
    """Who sends the command, and the per-account LLM key (header ``X-Cogni-LLM-Key``, already checked by
    ``services.run_keys.accept_llm_key``) that the runs it starts get; None: they use the shared key."""

    tenant: str
    llm_key: str | None = field(default=None, repr=False)


Handler = Callable[[ServerContext, Caller, uuid.UUID, dict[str, Any]], Awaitable[Result]]


def valid_envelope(command: Any) -> bool:
    """The body is a command: an object with an integer id and a string method."""
    return (
        isinstance(command, dict)
        and isinstance(command.get("id"), int)
        and not isinstance(command.get("id"), bool)
        and isinstance(command.get("method"), str)
    )


def error_reply(command_id: Any, code: str, message: str) -> dict[str, Any]:
    return {"type": "error", "id": command_id, "error": code, "message": message}


async def execute(
    ctx: ServerContext,
    tenant: str,
    thread_id: uuid.UUID,
    command: dict[str, Any],
    *,
    over_websocket: bool = False,
    llm_key: str | None = None,
) -> dict[str, Any]:
    """Run one command (already a valid envelope) and build its reply; a run it starts gets ``llm_key``."""
    command_id, method = command["id"], command["method"]
    params = command.get("params")
    if params is None:
        params = {}
    handler = HANDLERS.get(method)
    if method.startswith("subscription.") or method == "input.inject":  # the WebSocket takes subscribe itself
        where = "on this server" if over_websocket else "over HTTP (use the WebSocket or the event stream)"
        return error_reply(command_id, "not_supported", f"{method} is not supported {where}")
    if handler is None:
        return error_reply(command_id, "unknown_command", f"Unknown protocol command: {method}")
    if not isinstance(params, dict):
        return error_reply(command_id, "invalid_argument", f"{method}: params must be an object")
    try:
        result, applied = await handler(ctx, Caller(tenant, llm_key), thread_id, params)
    except ThreadNotFound:
        raise
    except ProtocolError as exc:
        return error_reply(command_id, exc.code, exc.message)
    except (Invalid, Conflict, NotFound) as exc:
        return error_reply(command_id, "invalid_argument", str(exc))
    except Forbidden as exc:
        return error_reply(command_id, "permission_denied", str(exc))
    except Exception as exc:  # never a 500: the client reads the code
        log.exception("command %s on thread %s failed", method, thread_id)
        return error_reply(command_id, "unknown_error", f"{type(exc).__name__}: {exc}")
    if applied is None:
        applied = await ctx.thread_log.high_water(str(thread_id))
    return {"type": "success", "id": command_id, "result": result, "meta": {"applied_through_seq": applied}}


def _only(params: dict[str, Any], allowed: frozenset[str], method: str) -> None:
    unknown = sorted(set(params) - allowed)
    if unknown:
        raise ProtocolError("invalid_argument", f"{method}: unknown param(s) {', '.join(unknown)}")


def _object(params: dict[str, Any], key: str, method: str) -> dict[str, Any] | None:
    value = params.get(key)
    if value is not None and not isinstance(value, dict):
        raise ProtocolError("invalid_argument", f"{method}: {key} must be an object")
    return value


async def _assistant(ctx: ServerContext, tenant: str, assistant_id: Any, method: str) -> dict[str, Any]:
    if not isinstance(assistant_id, str) or not assistant_id:
        raise ProtocolError("invalid_argument", f"{method} requires an assistant_id (a graph id or assistant UUID).")
    try:
        return await resolve_assistant(ctx, tenant, assistant_id)
    except NotFound as exc:
        raise ProtocolError("invalid_argument", f"Invalid assistant: {exc}") from None


async def start_run(
    ctx: ServerContext,
    caller: Caller,
    thread_id: uuid.UUID,
    req: RunRequest,
    *,
    thread_metadata: dict[str, Any] | None = None,
) -> Result:
    """Create a protocol run; the reply's seq is read before the run exists."""
    applied = await ctx.thread_log.high_water(str(thread_id))
    try:
        run = await create_run(
            ctx,
            caller.tenant,
            thread_id,
            req,
            kind="protocol",
            protocol=True,
            thread_metadata=thread_metadata,
            llm_key=caller.llm_key,
        )
    except NotFound as exc:  # the thread was created by another tenant meanwhile
        raise ThreadNotFound(str(exc)) from None
    return {"run_id": str(run["run_id"])}, applied


async def run_start(ctx: ServerContext, caller: Caller, thread_id: uuid.UUID, params: dict[str, Any]) -> Result:
    _only(params, _RUN_START_KEYS, "run.start")
    assistant = await _assistant(ctx, caller.tenant, params.get("assistant_id"), "run.start")
    config, metadata = _object(params, "config", "run.start"), _object(params, "metadata", "run.start")
    strategy = params.get("multitask_strategy", params.get("multitaskStrategy")) or "enqueue"
    if strategy not in STRATEGIES:
        raise ProtocolError("invalid_argument", f"run.start: multitask_strategy must be one of {list(STRATEGIES)}")
    thread = await maybe_own_thread(ctx, caller.tenant, thread_id)
    graph_input = params.get("input")
    command = None
    if thread is not None and thread.get("status") == "interrupted" and thread.get("interrupts"):
        command, graph_input = RunCommand(resume=graph_input), None  # run.start on a paused thread resumes it
    req = RunRequest(
        assistant_id=assistant["assistant_id"],
        input=graph_input,
        command=command,
        config=config,
        metadata=metadata,
        multitask_strategy=strategy,
        if_not_exists="create",
    )
    try:
        # a thread this creates gets the run's metadata too (as on the reference server)
        return await start_run(ctx, caller, thread_id, req, thread_metadata=metadata if thread is None else None)
    except Conflict as exc:
        raise ProtocolError("invalid_argument", str(exc)) from None


async def input_respond(ctx: ServerContext, caller: Caller, thread_id: uuid.UUID, params: dict[str, Any]) -> Result:
    _only(params, _RESPOND_KEYS, "input.respond")
    if "responses" in params:
        entries = params["responses"]
        if not isinstance(entries, list) or not entries or not all(isinstance(e, dict) for e in entries):
            raise ProtocolError("invalid_argument", "input.respond: responses must be a non-empty array of objects")
    else:
        entries = [params]
    answers: dict[str, Any] = {}
    for entry in entries:
        interrupt_id = entry.get("interrupt_id")
        if not isinstance(interrupt_id, str) or not interrupt_id:
            raise ProtocolError("invalid_argument", "input.respond requires an interrupt_id.")
        answers[interrupt_id] = entry.get("response")
    thread = await own_thread(ctx, caller.tenant, thread_id)
    pending = {
        str(intr.get("id"))
        for items in (thread.get("interrupts") or {}).values()
        for intr in items or ()
        if isinstance(intr, dict)
    }
    async with ctx.pool.connection() as conn:
        pending -= await thread_events.answered_interrupts(conn, thread_id)
    for interrupt_id in answers:
        if interrupt_id not in pending:
            raise ProtocolError("no_such_interrupt", f"Unknown or already-consumed interrupt: {interrupt_id}")
    update, goto = params.get("update"), params.get("goto")
    if update is not None and not isinstance(update, (dict, list)):
        raise ProtocolError("invalid_argument", "input.respond: update must be an object")
    assistant_id = (thread.get("metadata") or {}).get("assistant_id")
    if not assistant_id:
        raise ProtocolError("invalid_argument", "input.respond: the thread has no assistant to resume")
    req = RunRequest(
        assistant_id=str(assistant_id),
        command=RunCommand(resume=answers, update=update, goto=goto),
        config=_object(params, "config", "input.respond"),
        metadata=_object(params, "metadata", "input.respond"),
    )
    _, applied = await start_run(ctx, caller, thread_id, req)
    return {}, applied


async def state_fork(ctx: ServerContext, caller: Caller, thread_id: uuid.UUID, params: dict[str, Any]) -> Result:
    _only(params, frozenset({"checkpoint_id", "input", "config"}), "state.fork")
    checkpoint_id = params.get("checkpoint_id")
    if not isinstance(checkpoint_id, str) or not checkpoint_id:
        raise ProtocolError("invalid_argument", "state.fork requires a checkpoint_id.")
    thread = await own_thread(ctx, caller.tenant, thread_id)
    await protocol_state.require_checkpoint(ctx, caller.tenant, thread_id, checkpoint_id)
    assistant_id = (thread.get("metadata") or {}).get("assistant_id")
    if not assistant_id:
        raise ProtocolError("invalid_argument", "state.fork: the thread has no assistant to run")
    req = RunRequest(
        assistant_id=str(assistant_id),
        input=params.get("input"),
        config=_object(params, "config", "state.fork"),
        checkpoint_id=checkpoint_id,
    )
    result, applied = await start_run(ctx, caller, thread_id, req)
    return {**result, "thread_id": str(thread_id)}, applied


async def _state_get(ctx: ServerContext, caller: Caller, thread_id: uuid.UUID, params: dict[str, Any]) -> Result:
    return await protocol_state.state_get(ctx, caller.tenant, thread_id, params), None


async def _list_checkpoints(ctx: ServerContext, caller: Caller, thread_id: uuid.UUID, params: dict[str, Any]) -> Result:
    return await protocol_state.list_checkpoints(ctx, caller.tenant, thread_id, params), None


async def _get_tree(ctx: ServerContext, caller: Caller, thread_id: uuid.UUID, params: dict[str, Any]) -> Result:
    return await protocol_state.agent_tree(ctx, caller.tenant, thread_id, params), None


HANDLERS: dict[str, Handler] = {
    "run.start": run_start,
    "input.respond": input_respond,
    "state.get": _state_get,
    "state.listCheckpoints": _list_checkpoints,
    "state.fork": state_fork,
    "agent.getTree": _get_tree,
}

__all__ = ["ENVELOPE_MESSAGE", "HANDLERS", "ThreadNotFound", "error_reply", "execute", "valid_envelope"]
