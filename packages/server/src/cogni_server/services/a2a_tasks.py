"""A2A (agent-to-agent protocol, v0.3 JSON-RPC methods) on top of threads and runs.

The mapping: an assistant is an agent (its card from ``agent_card``); an A2A context is a thread of
the caller's tenant (``contextId`` = ``thread_id``; none given = a new thread); a task is a run
(``taskId`` = ``run_id``). A message becomes the run's input: its text parts one user message appended
to ``messages``, its data parts merged into the input as state keys. Runs are created through
``services.runs.create_run``, so tenant isolation, billing identity and the queue apply as for
``POST /threads/{id}/runs/wait``. Another tenant's context or task is "not found", never visible.

The wire types are the official ``a2a-sdk`` pydantic models of the v0.3 protocol.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Awaitable
from datetime import UTC, datetime
from typing import Any

from a2a.compat.v0_3 import types as a2a

from cogni_server.errors import NotFound
from cogni_server.serde import TOO_DEEP, json_depth_exceeds
from cogni_server.services import runs as run_service
from cogni_server.services.assistants import resolve_assistant
from cogni_server.services.context import ServerContext
from cogni_server.services.run_request import RunRequest
from cogni_server.storage import runs as run_repo

PROTOCOL_VERSION = "0.3.0"
MODES = ["text/plain", "application/json"]

# JSON-RPC error codes of the A2A specification (plus the standard ones we raise)
INVALID_PARAMS = -32602
TASK_NOT_FOUND = -32001
TASK_NOT_CANCELABLE = -32002
PUSH_NOT_SUPPORTED = -32003
UNSUPPORTED_OPERATION = -32004
CONTENT_TYPE_NOT_SUPPORTED = -32005

StreamItem = a2a.Task | a2a.TaskStatusUpdateEvent | a2a.TaskArtifactUpdateEvent


class A2AError(Exception):
    """A JSON-RPC error answer: ``code`` from the A2A specification, ``message`` for the caller."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _now() -> str:
    return datetime.now(UTC).isoformat()


# -- the agent card --------------------------------------------------------------------------------


async def agent_card(ctx: ServerContext, tenant: str, assistant_id: str, base_url: str) -> a2a.AgentCard:
    """The card of one of the tenant's assistants; ``base_url`` is where this server is reached."""
    assistant = await resolve_assistant(ctx, tenant, assistant_id)
    graph_id = assistant["graph_id"]
    name = str(assistant.get("name") or graph_id)
    description = assistant.get("description") or (
        ctx.registry.description(graph_id) if graph_id in ctx.registry else None
    )
    description = description or f"The {name!r} assistant (graph {graph_id!r}) of this Agent Server."
    return a2a.AgentCard(
        name=name,
        description=description,
        url=f"{base_url.rstrip('/')}/a2a/{assistant['assistant_id']}",
        version=str(assistant.get("version") or 1),
        protocol_version=PROTOCOL_VERSION,
        preferred_transport="JSONRPC",
        capabilities=a2a.AgentCapabilities(streaming=True, push_notifications=False, state_transition_history=False),
        default_input_modes=MODES,
        default_output_modes=MODES,
        skills=[
            a2a.AgentSkill(
                id=f"{graph_id}-main",
                name=name,
                description=description,
                tags=["assistant", graph_id],
                input_modes=MODES,
                output_modes=MODES,
            )
        ],
    )


# -- messages in, tasks out ------------------------------------------------------------------------


def _has_messages_key(ctx: ServerContext, graph_id: str) -> bool:
    try:
        schema = ctx.registry.schemas(graph_id).get("input_schema")
    except Exception:  # a schema that cannot be built does not stop a run
        return True
    props = schema.get("properties") if isinstance(schema, dict) else None
    return not isinstance(props, dict) or "messages" in props


def graph_input(ctx: ServerContext, graph_id: str, message: a2a.Message) -> dict[str, Any]:
    """The run input for ``message``: text parts one user message, data parts state keys."""
    if message.role != a2a.Role.user:
        raise A2AError(INVALID_PARAMS, f"message.role must be 'user', got {message.role.value!r}")
    texts: list[str] = []
    data: dict[str, Any] = {}
    for part in message.parts:
        inner = part.root
        if isinstance(inner, a2a.TextPart):
            texts.append(inner.text)
        elif isinstance(inner, a2a.DataPart):
            data.update(inner.data)
        else:
            raise A2AError(CONTENT_TYPE_NOT_SUPPORTED, "file parts are not supported; send text or data parts")
    if not texts and not data:
        raise A2AError(INVALID_PARAMS, "the message has no text or data parts")
    if texts:
        if not _has_messages_key(ctx, graph_id):
            raise A2AError(
                INVALID_PARAMS,
                f"graph {graph_id!r} has no 'messages' input key for text parts; send its input as a data part",
            )
        user = {"role": "user", "content": "\n".join(texts), "id": message.message_id}
        data["messages"] = [*(data.get("messages") or []), user]
    return data


def context_thread(context_id: str | None) -> uuid.UUID:
    if context_id is None:
        return uuid.uuid4()
    try:
        return uuid.UUID(context_id)
    except ValueError:
        raise A2AError(INVALID_PARAMS, f"contextId must be a UUID (a thread id), got {context_id!r}") from None


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content blocks: keep the text ones
        return "".join(
            b if isinstance(b, str) else str(b.get("text", "")) for b in content if isinstance(b, str | dict)
        )
    return ""


def _reply(values: Any) -> tuple[str | None, str]:
    """The last AI message of the state (its id and text), or (None, "")."""
    messages = values.get("messages") if isinstance(values, dict) else None
    for msg in reversed(messages if isinstance(messages, list) else []):
        if isinstance(msg, dict) and msg.get("type") in ("ai", "AIMessage", "AIMessageChunk"):
            return (str(msg.get("id")) if msg.get("id") else None), _text_of(msg.get("content"))
    return None, ""


def _artifact(run_id: str, values: Any) -> a2a.Artifact:
    """The task's result: the assistant's reply as text, else the whole final state as data."""
    _, text = _reply(values)
    parts: list[a2a.Part] = []
    if text:
        parts.append(a2a.Part(root=a2a.TextPart(text=text)))
    elif isinstance(values, dict):
        parts.append(a2a.Part(root=a2a.DataPart(data={k: v for k, v in values.items() if k != "__interrupt__"})))
    return a2a.Artifact(artifact_id=f"{run_id}-result", name="Assistant Response", parts=parts)


def _agent_message(context_id: str, task_id: str, part: a2a.TextPart | a2a.DataPart) -> a2a.Message:
    return a2a.Message(
        role=a2a.Role.agent,
        message_id=str(uuid.uuid4()),
        context_id=context_id,
        task_id=task_id,
        parts=[a2a.Part(root=part)],
    )


def task_of(run: dict[str, Any], output: Any, history: list[a2a.Message] | None = None) -> a2a.Task:
    """The A2A task of a run: its state, and once it ended its result (or error, or question)."""
    run_id, context_id = str(run["run_id"]), str(run["thread_id"])
    status = run["status"]
    artifacts = None
    message = None
    if status == "pending":
        state = a2a.TaskState.submitted
    elif status == "running":
        state = a2a.TaskState.working
    elif isinstance(output, dict) and "__error__" in output:
        state = a2a.TaskState.failed
        message = _agent_message(context_id, run_id, a2a.TextPart(text=_text_of(_error_text(output["__error__"]))))
    elif isinstance(output, dict) and output.get("__interrupt__"):
        state = a2a.TaskState.input_required
        message = _agent_message(context_id, run_id, a2a.DataPart(data={"interrupts": output["__interrupt__"]}))
        artifacts = [_artifact(run_id, output)]
    elif status == "interrupted":
        state = a2a.TaskState.canceled
    elif status in ("error", "timeout"):
        state = a2a.TaskState.failed
    else:
        state = a2a.TaskState.completed
        artifacts = [_artifact(run_id, output)]
    return a2a.Task(
        id=run_id,
        context_id=context_id,
        status=a2a.TaskStatus(state=state, message=message, timestamp=_now()),
        artifacts=artifacts,
        history=history,
        metadata={"assistant_id": str(run["assistant_id"]), "graph_id": run["graph_id"]},
    )


def _error_text(error: Any) -> str:
    if isinstance(error, dict):
        return ": ".join(str(error[k]) for k in ("error", "message") if error.get(k)) or json.dumps(error)
    return str(error)


async def _start(
    ctx: ServerContext,
    tenant: str,
    assistant_id: str,
    params: a2a.MessageSendParams,
    metadata: dict[str, Any] | None = None,
    *,
    llm_key: str | None = None,
) -> tuple[dict[str, Any], a2a.Message]:
    """Create the run for a message; returns it and the message as the task's history records it.

    ``metadata`` (what custom auth's ``threads.create_run`` handler set) goes on the run and on a
    thread the run creates; ``llm_key`` is the run's per-account LLM key (``services.run_keys``)."""
    message = params.message
    if params.configuration is not None and params.configuration.push_notification_config is not None:
        raise A2AError(PUSH_NOT_SUPPORTED, "push notifications are not supported; stream the message or poll tasks/get")
    if message.task_id:
        raise A2AError(
            UNSUPPORTED_OPERATION,
            "continuing a task (message.taskId) is not supported; send a new message in the same contextId",
        )
    assistant = await resolve_assistant(ctx, tenant, assistant_id)
    thread_id = context_thread(message.context_id)
    if json_depth_exceeds(params.model_dump(mode="json")):
        raise A2AError(INVALID_PARAMS, TOO_DEEP)
    request = RunRequest(
        assistant_id=str(assistant["assistant_id"]),
        input=graph_input(ctx, assistant["graph_id"], message),
        if_not_exists="create",
        metadata={**(metadata or {}), "a2a_message_id": message.message_id},
    )
    try:
        run = await run_service.create_run(
            ctx, tenant, thread_id, request, kind="a2a", force_values=True, llm_key=llm_key
        )
    except NotFound:  # another tenant's thread id: the same answer as an unknown one
        raise A2AError(INVALID_PARAMS, f"context {thread_id} not found") from None
    recorded = message.model_copy(update={"context_id": str(run["thread_id"]), "task_id": str(run["run_id"])})
    return run, recorded


async def _finished(ctx: ServerContext, tenant: str, run: dict[str, Any]) -> tuple[dict[str, Any], Any]:
    """Wait for the run to end; its final row and the thread's output after it."""
    await run_service.wait_until_done(ctx, str(run["run_id"]))
    async with ctx.pool.connection() as conn:
        try:
            final = await run_repo.get(conn, tenant, None, run["run_id"])
        except NotFound:
            final = {**run, "status": "interrupted"}
    output = json.loads(await run_service.thread_output(ctx, tenant, run["thread_id"], final))
    return final, output


async def send_message(
    ctx: ServerContext,
    tenant: str,
    assistant_id: str,
    params: a2a.MessageSendParams,
    metadata: dict[str, Any] | None = None,
    *,
    llm_key: str | None = None,
) -> tuple[a2a.Task, Awaitable[a2a.Task] | None]:
    """``message/send``: create the run now (a bad message fails here), then the finished task.

    Returns the submitted task and, unless ``configuration.blocking`` is false (the caller polls
    ``tasks/get``), the wait for the finished one, so the HTTP layer can keep the connection alive.
    """
    run, message = await _start(ctx, tenant, assistant_id, params, metadata, llm_key=llm_key)
    submitted = task_of(run, None, history=[message])
    if params.configuration is not None and params.configuration.blocking is False:
        return submitted, None
    return submitted, _finished_task(ctx, tenant, run, message)


async def _finished_task(ctx: ServerContext, tenant: str, run: dict[str, Any], message: a2a.Message) -> a2a.Task:
    final, output = await _finished(ctx, tenant, run)
    return task_of(final, output, history=[message])


async def stream_message(
    ctx: ServerContext,
    tenant: str,
    assistant_id: str,
    params: a2a.MessageSendParams,
    metadata: dict[str, Any] | None = None,
    *,
    llm_key: str | None = None,
) -> AsyncIterator[StreamItem]:
    """``message/stream``: the task, ``working``, each new reply as an artifact, then the final status.

    The run is created before the first item is yielded, so a bad message fails the request itself.
    """
    run, message = await _start(ctx, tenant, assistant_id, params, metadata, llm_key=llm_key)
    return _stream_events(ctx, tenant, run, message)


async def _stream_events(
    ctx: ServerContext, tenant: str, run: dict[str, Any], message: a2a.Message
) -> AsyncIterator[StreamItem]:
    run_id, context_id = str(run["run_id"]), str(run["thread_id"])
    yield task_of({**run, "status": "pending"}, None, history=[message])
    working = a2a.TaskStatus(state=a2a.TaskState.working, timestamp=_now())
    yield a2a.TaskStatusUpdateEvent(task_id=run_id, context_id=context_id, status=working, final=False)
    sent: set[str] = set()
    async for event in ctx.broker.subscribe(run_id, last_event_id="-1"):
        if event.event != "values":
            continue
        msg_id, text = _reply(json.loads(event.data))
        key = msg_id or text
        if text and key not in sent:
            sent.add(key)
            part = a2a.Part(root=a2a.TextPart(text=text))
            artifact = a2a.Artifact(artifact_id=f"{run_id}-result", name="Assistant Response", parts=[part])
            yield a2a.TaskArtifactUpdateEvent(
                task_id=run_id, context_id=context_id, artifact=artifact, append=False, last_chunk=False
            )
    final, output = await _finished(ctx, tenant, run)
    task = task_of(final, output)
    for artifact in task.artifacts or []:
        yield a2a.TaskArtifactUpdateEvent(
            task_id=run_id, context_id=context_id, artifact=artifact, append=False, last_chunk=True
        )
    yield a2a.TaskStatusUpdateEvent(task_id=run_id, context_id=context_id, status=task.status, final=True)


async def owned_run(ctx: ServerContext, tenant: str, assistant_id: str, task_id: str) -> dict[str, Any]:
    """The tenant's run ``task_id`` of this assistant; TaskNotFound for anything else."""
    assistant = await resolve_assistant(ctx, tenant, assistant_id)
    missing = A2AError(TASK_NOT_FOUND, f"task {task_id} not found")
    try:
        run_id = uuid.UUID(task_id)
    except ValueError:
        raise missing from None
    async with ctx.pool.connection() as conn:
        try:
            run = await run_repo.get(conn, tenant, None, run_id)
        except NotFound:
            raise missing from None
    if str(run["assistant_id"]) != str(assistant["assistant_id"]):
        raise missing
    return run


async def _task_now(ctx: ServerContext, tenant: str, run: dict[str, Any]) -> a2a.Task:
    """The task of ``run`` as it stands; once it ended, its result from the context's (thread's) state."""
    if run["status"] in run_service.TERMINAL:
        output = json.loads(await run_service.thread_output(ctx, tenant, run["thread_id"], run))
        return task_of(run, output)
    return task_of(run, None)


async def get_task(ctx: ServerContext, tenant: str, assistant_id: str, params: a2a.TaskQueryParams) -> a2a.Task:
    """``tasks/get``: the task's state now."""
    return await _task_now(ctx, tenant, await owned_run(ctx, tenant, assistant_id, params.id))


async def cancel_task(ctx: ServerContext, tenant: str, assistant_id: str, params: a2a.TaskIdParams) -> a2a.Task:
    """``tasks/cancel``: interrupt the run (pending or running) and answer the canceled task."""
    run = await owned_run(ctx, tenant, assistant_id, params.id)
    if run["status"] in run_service.TERMINAL:
        raise A2AError(TASK_NOT_CANCELABLE, f"task {params.id} already ended ({run['status']})")
    await run_service.cancel_runs(ctx, [str(run["run_id"])], "interrupt")
    await run_service.wait_until_done(ctx, str(run["run_id"]), limit=30.0)
    async with ctx.pool.connection() as conn:
        try:
            run = await run_repo.get(conn, tenant, None, run["run_id"])
        except NotFound:
            run = {**run, "status": "interrupted"}
    return await _task_now(ctx, tenant, run)  # still working if the worker has not stopped it yet
