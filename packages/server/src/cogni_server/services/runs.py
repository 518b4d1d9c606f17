"""Creating, cancelling and waiting on runs (shared by thread runs, stateless runs and batches)."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from typing import Any

from fastapi import HTTPException

from cogni_server import metrics
from cogni_server.api.common import AppState, parse_id
from cogni_server.api.models import RunCreateBody
from cogni_server.ids import uuid7
from cogni_server.serde import dumps, loads
from cogni_server.services.assistants import resolve_assistant
from cogni_server.storage import runs as run_repo
from cogni_server.storage import threads as thread_repo
from cogni_server.storage.runs import NewRun

TERMINAL = ("success", "error", "interrupted", "timeout")


def _stream_modes(body: RunCreateBody) -> list[str]:
    modes = [body.stream_mode] if isinstance(body.stream_mode, str) else list(body.stream_mode)
    return list(dict.fromkeys(modes)) or ["values"]


def _merge(base: dict[str, Any] | None, override: dict[str, Any] | None) -> dict[str, Any]:
    merged = dict(base or {})
    for key, value in (override or {}).items():
        if key == "configurable" and isinstance(value, dict):
            merged[key] = {**(merged.get(key) or {}), **value}
        else:
            merged[key] = value
    return merged


async def create_run(
    st: AppState,
    tenant: str,
    thread_id: str | None,
    body: RunCreateBody,
    *,
    kind: str,
    force_values: bool = False,
) -> dict[str, Any]:
    """Insert the run (applying multitask rules), start it here if a slot is free, stop the ones it replaces."""
    if unsupported := body.unsupported():
        raise HTTPException(422, detail=f"unsupported field(s) for this server: {', '.join(unsupported)}")
    stateless = thread_id is None
    tid = uuid.uuid4() if stateless else parse_id(thread_id, "thread_id")  # type: ignore[arg-type]
    assistant = st.system_assistants.get(body.assistant_id)
    if assistant is None:
        async with st.pool.connection() as conn:
            assistant = await resolve_assistant(conn, st, tenant, body.assistant_id)
    modes = _stream_modes(body)
    if force_values and "values" not in modes:
        modes.append("values")
    durability = body.durability
    if durability is None and body.checkpoint_during is not None:
        durability = "async" if body.checkpoint_during else "exit"
    if body.command is not None and body.input is not None:
        raise HTTPException(422, detail="input and command are mutually exclusive")
    kwargs = {
        "input": body.input,
        "command": body.command.model_dump(exclude_unset=True) if body.command else None,
        "config": _merge(assistant["config"], body.config),
        "context": {**(assistant.get("context") or {}), **(body.context or {})},
        "stream_mode": modes,
        "stream_subgraphs": body.stream_subgraphs,
        "stream_resumable": body.stream_resumable,
        "interrupt_before": body.interrupt_before,
        "interrupt_after": body.interrupt_after,
        "checkpoint": body.checkpoint,
        "checkpoint_id": body.checkpoint_id,
        "durability": durability,
        "on_disconnect": body.on_disconnect,
        "temporary": stateless and body.on_completion != "keep",
        "webhook": None,
        "feedback_keys": None,
    }
    new = NewRun(
        run_id=uuid7(),
        thread_id=tid,
        assistant_id=uuid.UUID(assistant["assistant_id"]),
        graph_id=assistant["graph_id"],
        owner=tenant,
        metadata=body.metadata or {},
        kwargs=kwargs,
        multitask_strategy=body.multitask_strategy,
        if_not_exists="create" if stateless else body.if_not_exists,
        after_seconds=body.after_seconds or 0.0,
        thread_metadata={"graph_id": assistant["graph_id"], "assistant_id": assistant["assistant_id"]},
    )
    worker = st.workers.try_reserve()
    try:
        async with st.pool.connection() as conn:
            created = await run_repo.create(conn, new, worker_id=worker, lease_seconds=st.settings.lease_seconds)
    except BaseException:
        if worker is not None:
            st.workers.release()
        raise
    if created.started:
        st.workers.start_reserved(created.run)
    else:
        if worker is not None:
            st.workers.release()
        await st.broker.notify_run_pending()
        if new.after_seconds > 0:  # wake the workers when the delay is over (the poll is the fallback)
            asyncio.get_running_loop().call_later(
                new.after_seconds + 0.01, lambda: asyncio.ensure_future(st.broker.notify_run_pending())
            )
    for other in created.to_cancel:
        await st.broker.publish_control(other, body.multitask_strategy)
    for other in created.cancelled:  # queued runs that never started: close their streams
        await st.broker.end(other)
    metrics.RUNS_CREATED.labels(kind).inc()
    return created.run


async def wait_until_done(st: AppState, run_id: str, *, poll: float = 0.5, limit: float | None = None) -> None:
    """Block until the run is terminal (or gone): broker end first, Postgres polling as the fallback."""
    loop = asyncio.get_running_loop()
    deadline = None if limit is None else loop.time() + limit
    sub = st.broker.subscribe(run_id, last_event_id="-1")

    async def drain() -> None:
        async for _ in sub:
            pass

    drainer = asyncio.ensure_future(drain())
    try:
        while True:
            remaining = None if deadline is None else max(0.0, deadline - loop.time())
            wait_for = poll if remaining is None else min(poll, remaining)
            done, _ = await asyncio.wait({drainer}, timeout=wait_for)
            async with st.pool.connection() as conn:
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


async def collect_output(st: AppState, run_id: str) -> bytes:
    """The JSON a ``/wait`` answers: the last ``values`` event, or ``{"__error__": ...}``."""
    last_values: bytes | None = None
    error: bytes | None = None
    async for event in st.broker.subscribe(run_id, last_event_id="-1"):
        if event.event == "values":
            last_values = event.data
        elif event.event == "error":
            error = event.data
    if error is not None:
        return b'{"__error__":' + error + b"}"
    return last_values if last_values is not None else b"{}"


async def thread_output(st: AppState, tenant: str, thread_id: uuid.UUID, run: dict[str, Any]) -> bytes:
    """What ``join`` answers for a finished run: the thread's values (plus interrupts or the error)."""
    async with st.pool.connection() as conn:
        try:
            thread = await thread_repo.get(conn, tenant, thread_id)
        except Exception:
            return b"{}"
    values = dict(thread.get("values") or {}) if isinstance(thread.get("values"), dict) else thread.get("values")
    if run["status"] in ("error", "timeout") and thread.get("error"):
        return dumps({"__error__": thread["error"]})
    interrupts = [i for items in (thread.get("interrupts") or {}).values() for i in items]
    if interrupts and isinstance(values, dict):
        values["__interrupt__"] = interrupts
    return dumps(values if values is not None else {})


async def cancel_runs(st: AppState, run_ids: list[str], action: str) -> None:
    """Pending runs are cancelled in Postgres; running ones get a control message to their worker."""
    async with st.pool.connection() as conn:
        cancelled = await run_repo.cancel_pending(conn, run_ids, action)
    done = {str(r["run_id"]) for r in cancelled}
    for run_id in done:
        await st.broker.end(run_id)
    for run_id in run_ids:
        if run_id not in done:
            await st.broker.publish_control(run_id, action)


def parse_json_or_empty(data: bytes) -> Any:
    return loads(data) if data else {}
