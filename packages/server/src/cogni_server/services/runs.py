"""Runs as the domain sees them: create (multitask rules, started here when a slot is free), read,
list, cancel, delete, wait for the end and build what ``/wait`` and ``/join`` answer.

Shared by thread runs, stateless runs, batches and (later) crons and the thread-streaming commands;
nothing here knows about HTTP.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from typing import Any

from cogni_ai_core.observability import inject_carrier
from cogni_server import metrics
from cogni_server.auth import NoAuth
from cogni_server.auth.custom import current_user, user_configurable
from cogni_server.errors import Conflict, Invalid, NotFound, Unsupported
from cogni_server.ids import uuid7
from cogni_server.runs.settings import RunSettings, dump_run_settings
from cogni_server.serde import dumps
from cogni_server.services import request_headers
from cogni_server.services.assistants import resolve_assistant
from cogni_server.services.billing import bind_billing_identity
from cogni_server.services.context import ServerContext
from cogni_server.services.run_keys import seal_for
from cogni_server.services.run_request import RunRequest
from cogni_server.services.thread_ttl_policy import ttl_for_new_thread
from cogni_server.services.webhook_policy import check_webhook
from cogni_server.storage import runs as run_repo
from cogni_server.storage import threads as thread_repo
from cogni_server.storage.runs import NewRun

TERMINAL = ("success", "error", "interrupted", "timeout")
CANCEL_ACTIONS = ("interrupt", "rollback")


def _merge(base: dict[str, Any] | None, override: dict[str, Any] | None) -> dict[str, Any]:
    merged = dict(base or {})
    for key, value in (override or {}).items():
        if key == "configurable" and isinstance(value, dict):
            merged[key] = {**(merged.get(key) or {}), **value}
        else:
            merged[key] = value
    return merged


def _with_headers(config: dict[str, Any]) -> dict[str, Any]:
    """The request headers ``http.configurable_headers`` selects win over the same keys in the body."""
    headers = request_headers.current()
    return _merge(config, {"configurable": headers}) if headers else config


def run_settings(req: RunRequest, assistant: dict[str, Any], *, stateless: bool, force_values: bool) -> RunSettings:
    """The stored execution settings of a run: the request over its assistant's defaults."""
    if unsupported := req.unsupported():
        raise Unsupported(f"unsupported field(s) for this server: {', '.join(unsupported)}")
    if req.command is not None and req.input is not None:
        raise Invalid("input and command are mutually exclusive")
    return RunSettings(
        input=req.input,
        command=req.command.model_dump(exclude_unset=True) if req.command else None,
        config=_with_headers(_merge(assistant["config"], req.config)),
        context={**(assistant.get("context") or {}), **(req.context or {})},
        stream_mode=req.stream_modes(force_values=force_values),
        stream_subgraphs=req.stream_subgraphs,
        stream_resumable=req.stream_resumable,
        interrupt_before=req.interrupt_before,
        interrupt_after=req.interrupt_after,
        checkpoint=req.checkpoint,
        checkpoint_id=req.checkpoint_id,
        durability=req.durability_mode(),
        on_disconnect=req.on_disconnect,
        temporary=stateless and req.on_completion != "keep",
        webhook=req.webhook,
    )


def with_user(config: dict[str, Any], keys: dict[str, Any]) -> dict[str, Any]:
    """``config`` with the custom auth user's keys in ``configurable`` (over any the caller sent)."""
    return {**config, "configurable": {**(config.get("configurable") or {}), **keys}}


def bills_caller(ctx: ServerContext) -> bool:
    """Whether runs are bound to the authenticated tenant's billing identity (every mode but ``none``)."""
    return not isinstance(ctx.authenticator, NoAuth)


def new_run(
    tenant: str,
    thread_id: uuid.UUID | None,
    req: RunRequest,
    assistant: dict[str, Any],
    *,
    force_values: bool = False,
    bind_billing: bool = False,
    protocol: bool = False,
    thread_metadata: dict[str, Any] | None = None,
    llm_key: bool = False,
) -> NewRun:
    """The row to insert for ``req`` on ``thread_id`` (None: a stateless run on a new thread).

    With ``bind_billing`` the run bills ``tenant``, whatever account its config names (see
    ``services.billing``).
    """
    stateless = thread_id is None
    settings = run_settings(req, assistant, stateless=stateless, force_values=force_values)
    if bind_billing:
        settings = settings.model_copy(update={"config": bind_billing_identity(settings.config, tenant)})
    user = current_user.get()
    if user is not None:  # custom auth: graphs see the user, as on the reference
        settings = settings.model_copy(update={"config": with_user(settings.config, user_configurable(user))})
    if protocol:  # a run of the thread-streaming commands: executes in v3 mode
        settings = settings.model_copy(update={"protocol": True})
    if llm_key:  # only the fact: the key itself is stored encrypted beside the run (storage/run_secrets.py)
        settings = settings.model_copy(update={"llm_key": True})
    carrier = inject_carrier()  # the creating request's trace, continued by the worker (empty: tracing off)
    if carrier:
        settings = settings.model_copy(update={"trace_carrier": carrier})
    return NewRun(
        run_id=uuid7(),
        thread_id=uuid.uuid4() if thread_id is None else thread_id,
        assistant_id=uuid.UUID(assistant["assistant_id"]),
        graph_id=assistant["graph_id"],
        owner=tenant,
        metadata=req.metadata or {},
        kwargs=dump_run_settings(settings),
        multitask_strategy=req.multitask_strategy,
        if_not_exists="create" if stateless else req.if_not_exists,
        after_seconds=req.after_seconds or 0.0,
        thread_metadata={  # a thread the run creates
            **(thread_metadata or {}),
            **(req.metadata or {} if user is not None else {}),  # custom auth: the owner its handler stamped
            "graph_id": assistant["graph_id"],
            "assistant_id": assistant["assistant_id"],
        },
    )


async def create_run(
    ctx: ServerContext,
    tenant: str,
    thread_id: uuid.UUID | None,
    req: RunRequest,
    *,
    kind: str,
    force_values: bool = False,
    protocol: bool = False,
    thread_metadata: dict[str, Any] | None = None,
    llm_key: str | None = None,
) -> dict[str, Any]:
    """Insert the run (applying multitask rules), start it here if a slot is free, stop the ones it replaces.

    ``thread_id`` None is a stateless run on a new temporary thread. ``protocol``: a run of the
    thread-streaming commands (executes in v3 mode); ``thread_metadata`` goes on a thread it creates.
    ``llm_key``: the run's per-account LiteLLM key (``services.run_keys``), kept encrypted until the run ends.
    """
    sealed = seal_for(ctx, llm_key, tenant) if llm_key is not None else None
    assistant = await resolve_assistant(ctx, tenant, req.assistant_id)
    await check_webhook(ctx.webhooks, req.webhook)
    new = new_run(
        tenant,
        thread_id,
        req,
        assistant,
        force_values=force_values,
        bind_billing=bills_caller(ctx),
        protocol=protocol,
        thread_metadata=thread_metadata,
        llm_key=sealed is not None,
    )
    new.thread_ttl = ttl_for_new_thread(ctx, None)  # a thread this run creates gets the default TTL
    try:
        async with ctx.workers.reserve() as slot:
            async with ctx.pool.connection() as conn:
                created = await run_repo.create(
                    conn, new, worker_id=slot.worker_id, lease_seconds=ctx.settings.lease_seconds, secret=sealed
                )
            if created.started:
                slot.start(created.run)
    except Conflict:  # refused by its multitask strategy: the thread stream still ends it
        await _never_started(ctx, str(new.thread_id), str(new.run_id), new.graph_id, "Run rejected: the thread is busy")
        raise
    if not created.started:
        await ctx.broker.notify_run_pending()
        if new.after_seconds > 0:  # wake the workers when the delay is over (the poll is the fallback)
            asyncio.get_running_loop().call_later(
                new.after_seconds + 0.01, lambda: asyncio.ensure_future(ctx.broker.notify_run_pending())
            )
    for other in created.to_cancel:
        await ctx.broker.publish_control(other, req.multitask_strategy)
    for other in created.cancelled:  # queued runs that never started: close their streams
        await ctx.broker.end(other)
        await _never_started(
            ctx, str(new.thread_id), other, None, "Run cancelled before it started: a newer run replaced it"
        )
    metrics.RUNS_CREATED.labels(kind).inc()
    return created.run


async def _never_started(ctx: ServerContext, thread_id: str, run_id: str, graph_id: str | None, error: str) -> None:
    """A run that will never execute still ends on the thread stream (after the active run, if any)."""
    lifecycle = ctx.executor.lifecycle
    if lifecycle is not None:
        code = "rejected" if error.startswith("Run rejected") else "cancelled"
        await lifecycle.ended_without_running(
            thread_id, run_id, error=error, code=code, graph_name=graph_id, deferred=True
        )


async def get_run(ctx: ServerContext, tenant: str, thread_id: uuid.UUID | None, run_id: uuid.UUID) -> dict[str, Any]:
    async with ctx.pool.connection() as conn:
        return await run_repo.get(conn, tenant, thread_id, run_id)


async def list_runs(
    ctx: ServerContext, tenant: str, thread_id: uuid.UUID, *, status: str | None, limit: int, offset: int
) -> list[dict[str, Any]]:
    async with ctx.pool.connection() as conn:
        if not await thread_repo.exists(conn, tenant, thread_id):
            raise NotFound(f"thread {thread_id} not found")
        return await run_repo.list_for_thread(conn, tenant, thread_id, status=status, limit=limit, offset=offset)


async def delete_run(ctx: ServerContext, tenant: str, thread_id: uuid.UUID, run_id: uuid.UUID) -> None:
    async with ctx.pool.connection() as conn:
        await run_repo.delete(conn, tenant, thread_id, run_id)


async def cancel_runs(ctx: ServerContext, run_ids: list[str], action: str) -> None:
    """Pending runs are cancelled in Postgres; running ones get a control message to their worker."""
    if action not in CANCEL_ACTIONS:
        raise Invalid(f"cancel action must be one of {list(CANCEL_ACTIONS)}, got {action!r}")
    async with ctx.pool.connection() as conn:
        cancelled = await run_repo.cancel_pending(conn, run_ids, action)
    done = {str(r["run_id"]) for r in cancelled}
    for row in cancelled:
        await ctx.broker.end(str(row["run_id"]))
        await _never_started(ctx, str(row["thread_id"]), str(row["run_id"]), None, "Run cancelled before it started")
    for run_id in run_ids:
        if run_id not in done:
            await ctx.broker.publish_control(run_id, action)


async def cancel_run(
    ctx: ServerContext,
    tenant: str,
    thread_id: uuid.UUID,
    run_id: uuid.UUID,
    *,
    action: str,
    wait: bool,
) -> None:
    """Cancel one of the tenant's runs; with ``wait``, return once it ended (at most a minute)."""
    run = await get_run(ctx, tenant, thread_id, run_id)
    if run["status"] in TERMINAL:
        raise Conflict(f"run {run_id} is already {run['status']}")
    await cancel_runs(ctx, [str(run_id)], action)
    if wait:
        await wait_until_done(ctx, str(run_id), limit=60.0)


async def cancel_matching(
    ctx: ServerContext,
    tenant: str,
    *,
    thread_id: uuid.UUID | None,
    run_ids: list[uuid.UUID] | None,
    status: str | None,
    action: str,
) -> int:
    """Cancel the tenant's in-flight runs that match (a thread, ids, a status); returns how many."""
    if thread_id is None and run_ids is None and status is None:
        raise Invalid("give thread_id, run_ids or status")
    async with ctx.pool.connection() as conn:
        rows = await run_repo.inflight(conn, tenant, thread_id=thread_id, run_ids=run_ids, status=status or "all")
    if rows:
        await cancel_runs(ctx, [str(r["run_id"]) for r in rows], action)
    return len(rows)


async def cancel_thread_runs(ctx: ServerContext, tenant: str, thread_id: uuid.UUID, action: str = "interrupt") -> None:
    """Stop everything in flight on a thread (before it is deleted)."""
    async with ctx.pool.connection() as conn:
        rows = await run_repo.inflight(conn, tenant, thread_id=thread_id, run_ids=None, status="all")
    if rows:
        await cancel_runs(ctx, [str(r["run_id"]) for r in rows], action)


async def wait_until_done(ctx: ServerContext, run_id: str, *, poll: float = 0.5, limit: float | None = None) -> None:
    """Block until the run is terminal (or gone): broker end first, Postgres polling as the fallback."""
    loop = asyncio.get_running_loop()
    deadline = None if limit is None else loop.time() + limit
    sub = ctx.broker.subscribe(run_id, last_event_id="-1")

    async def drain() -> None:
        async for _ in sub:
            pass

    drainer = asyncio.ensure_future(drain())
    try:
        while True:
            remaining = None if deadline is None else max(0.0, deadline - loop.time())
            wait_for = poll if remaining is None else min(poll, remaining)
            done, _ = await asyncio.wait({drainer}, timeout=wait_for)
            async with ctx.pool.connection() as conn:
                status = await run_repo.status_of(conn, run_id)
            if status is None or status in TERMINAL:
                return
            if deadline is not None and loop.time() >= deadline:
                return
            if done:
                await asyncio.sleep(poll)
    finally:
        drainer.cancel()
        with contextlib.suppress(BaseException):
            await drainer


async def collect_output(ctx: ServerContext, run_id: str) -> bytes:
    """The JSON a ``/wait`` answers: the last ``values`` event, or ``{"__error__": ...}``."""
    last_values: bytes | None = None
    error: bytes | None = None
    async for event in ctx.broker.subscribe(run_id, last_event_id="-1"):
        if event.event == "values":
            last_values = event.data
        elif event.event == "error":
            error = event.data
    if error is not None:
        return b'{"__error__":' + error + b"}"
    return last_values if last_values is not None else b"{}"


async def join_output(ctx: ServerContext, tenant: str, run: dict[str, Any]) -> bytes:
    """What ``join`` answers: wait for the run to end, then the thread's values (or the error)."""
    if run["status"] not in TERMINAL:
        await wait_until_done(ctx, str(run["run_id"]))
    async with ctx.pool.connection() as conn:
        try:
            final = await run_repo.get(conn, tenant, None, run["run_id"])
        except NotFound:  # rolled back: the run is gone
            final = {**run, "status": "interrupted"}
    return await thread_output(ctx, tenant, run["thread_id"], final)


async def thread_output(ctx: ServerContext, tenant: str, thread_id: uuid.UUID, run: dict[str, Any]) -> bytes:
    """The thread's values after a finished run (plus interrupts or the error)."""
    async with ctx.pool.connection() as conn:
        try:
            thread = await thread_repo.get(conn, tenant, thread_id)
        except NotFound:
            return b"{}"
    values = dict(thread.get("values") or {}) if isinstance(thread.get("values"), dict) else thread.get("values")
    if run["status"] in ("error", "timeout") and thread.get("error"):
        return dumps({"__error__": thread["error"]})
    interrupts = [i for items in (thread.get("interrupts") or {}).values() for i in items]
    if interrupts and isinstance(values, dict):
        values["__interrupt__"] = interrupts
    return dumps(values if values is not None else {})
