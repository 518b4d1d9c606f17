"""Crons as the domain sees them: create (stateless or on a thread), read, patch, delete, search,
count, and the run request one tick of a cron makes. The scheduler loop is ``services.scheduler``.

A cron stores the run request it was created with as ``payload`` (the fields as sent, the assistant
resolved to its id, ``config.configurable.cron_id`` added); each tick builds a ``RunRequest`` from it
and inserts the run as the cron's owner. A per-account LLM key sent with the creation (or a PATCH) is kept
sealed beside the cron (``cron_secrets``), never in it, and each tick's run gets it (``services.scheduler``).
"""

from __future__ import annotations

import uuid
from typing import Any, Literal

from psycopg.errors import ForeignKeyViolation
from pydantic import StrictBool

from cogni_server.errors import Invalid, NotFound
from cogni_server.ids import uuid7
from cogni_server.services.assistants import assistant_uuid, resolve_assistant
from cogni_server.services.context import ServerContext
from cogni_server.services.cron_schedule import check_schedule, check_timezone, next_tick, now, parse_end_time
from cogni_server.services.run_keys import seal_for
from cogni_server.services.run_request import Durability, Json, MultitaskStrategy, RunRequest, StreamModeName, Strict
from cogni_server.services.runs import new_run
from cogni_server.services.webhook_policy import check_webhook
from cogni_server.storage import crons as cron_repo
from cogni_server.storage import threads as thread_repo

# The payload keys a tick passes on to the run (everything else in the payload is the cron's own).
RUN_FIELDS = (
    "input",
    "config",
    "context",
    "metadata",
    "stream_mode",
    "stream_subgraphs",
    "stream_resumable",
    "interrupt_before",
    "interrupt_after",
    "webhook",
    "multitask_strategy",
    "durability",
    "checkpoint_during",
)
SELECT_FIELDS = frozenset(
    {
        "cron_id",
        "assistant_id",
        "thread_id",
        "end_time",
        "schedule",
        "timezone",
        "created_at",
        "updated_at",
        "user_id",
        "payload",
        "next_run_date",
        "metadata",
        "now",
        "on_run_completed",
        "enabled",
    }
)
OnCompletion = Literal["delete", "keep"]


class CronRunFields(Strict):
    """The run fields a cron may carry (what both SDKs send); command, checkpoints, if_not_exists,
    after_seconds and the like make no sense for a schedule and are refused as unknown fields."""

    input: Any = None
    config: Json | None = None
    context: Json | None = None
    metadata: Json | None = None
    stream_mode: StreamModeName | list[StreamModeName] | None = None
    stream_subgraphs: bool | None = None
    stream_resumable: bool | None = None
    interrupt_before: Literal["*"] | list[str] | None = None
    interrupt_after: Literal["*"] | list[str] | None = None
    webhook: str | None = None
    multitask_strategy: MultitaskStrategy | None = None
    durability: Durability | None = None
    checkpoint_during: bool | None = None
    on_run_completed: OnCompletion | None = None
    timezone: str | None = None
    end_time: str | None = None


class CronCreate(CronRunFields):
    if_not_exists: Literal["create", "reject"] | None = None  # thread crons: create the thread if missing
    assistant_id: str
    schedule: str
    enabled: StrictBool = True


class CronPatch(CronRunFields):
    schedule: str | None = None
    enabled: StrictBool | None = None


def run_request(cron: dict[str, Any]) -> RunRequest:
    """What one tick of ``cron`` asks for: its payload's run fields, as the cron's assistant."""
    payload = cron["payload"]
    fields = {k: payload[k] for k in RUN_FIELDS if payload.get(k) is not None}
    if cron.get("thread_id") is None:
        fields["on_completion"] = cron.get("on_run_completed") or "delete"
    return RunRequest(assistant_id=str(cron["assistant_id"]), **fields)


def _with_cron_id(config: dict[str, Any] | None, cron_id: uuid.UUID) -> dict[str, Any]:
    out = dict(config or {})
    out["configurable"] = {**(out.get("configurable") or {}), "cron_id": str(cron_id)}
    return out


def _validate_run(tenant: str, cron: dict[str, Any], assistant: dict[str, Any]) -> None:
    """Fail at creation, not at the first tick, when the payload would not make a run."""
    new_run(tenant, cron.get("thread_id") or None, run_request(cron), assistant)


async def create(
    ctx: ServerContext,
    tenant: str,
    user_id: str,
    thread_id: uuid.UUID | None,
    body: CronCreate,
    *,
    llm_key: str | None = None,
) -> dict[str, Any]:
    """``llm_key``: the per-account LLM key of the cron's runs (``services.run_keys``), kept sealed with it."""
    sealed = seal_for(ctx, llm_key, tenant) if llm_key is not None else None
    schedule = check_schedule(body.schedule, allow_seconds=ctx.settings.cron_allow_seconds)
    timezone = check_timezone(body.timezone)
    end_time = parse_end_time(body.end_time)
    assistant = await resolve_assistant(ctx, tenant, body.assistant_id)
    await check_webhook(ctx.webhooks, body.webhook)
    cron_id = uuid7()
    payload = body.model_dump(exclude_unset=True)
    payload["assistant_id"] = assistant["assistant_id"]
    payload["config"] = _with_cron_id(body.config, cron_id)
    values = {
        "cron_id": cron_id,
        "owner": tenant,
        "assistant_id": uuid.UUID(assistant["assistant_id"]),
        "thread_id": thread_id,
        "schedule": schedule,
        "timezone": timezone,
        "payload": payload,
        "metadata": body.metadata or {},
        "next_run_date": next_tick(schedule, timezone, now()),
        "end_time": end_time,
        "enabled": body.enabled,
        "on_run_completed": (body.on_run_completed or "delete") if thread_id is None else None,
        "user_id": user_id,
    }
    _validate_run(tenant, values, assistant)
    async with ctx.pool.connection() as conn:
        if thread_id is not None and not await thread_repo.exists(conn, tenant, thread_id):
            if body.if_not_exists != "create":
                raise NotFound(f"thread {thread_id} not found")
            await thread_repo.create(conn, owner=tenant, thread_id=thread_id, metadata={}, if_exists="do_nothing")
        try:
            async with conn.transaction():  # the cron and its key, or neither
                created = await cron_repo.create(conn, values)
                if sealed is not None:
                    await cron_repo.store_secret(conn, cron_id, sealed)
            return cron_repo.cron_out(created)
        except ForeignKeyViolation:
            raise NotFound(f"thread {thread_id} or assistant {body.assistant_id!r} not found") from None


async def get(ctx: ServerContext, tenant: str, cron_id: uuid.UUID) -> dict[str, Any]:
    async with ctx.pool.connection() as conn:
        return cron_repo.cron_out(await cron_repo.get(conn, tenant, cron_id))


async def patch(
    ctx: ServerContext, tenant: str, cron_id: uuid.UUID, body: CronPatch, *, llm_key: str | None = None
) -> dict[str, Any]:
    """Change a cron: schedule/time zone recompute the next tick (so does re-enabling); ``metadata``
    merges into the cron's metadata and replaces the runs' metadata; other run fields replace theirs
    in the payload; ``end_time: null`` clears the end; ``llm_key`` replaces the key its runs get."""
    sent = body.model_fields_set
    sealed = seal_for(ctx, llm_key, tenant) if llm_key is not None else None
    if not sent and sealed is None:
        raise Invalid("the request body is empty: give at least one field to change")
    if "assistant_id" in sent:
        raise Invalid("a cron's assistant cannot be changed; delete it and create another")
    if body.webhook is not None:
        await check_webhook(ctx.webhooks, body.webhook)
    schedule = check_schedule(body.schedule, allow_seconds=ctx.settings.cron_allow_seconds) if body.schedule else None
    if "schedule" in sent and schedule is None:
        raise Invalid(f"Invalid cron schedule: {body.schedule!r}")
    timezone = check_timezone(body.timezone)
    end_time = parse_end_time(body.end_time)
    if "enabled" in sent and body.enabled is None:
        raise Invalid("enabled must be true or false")
    async with ctx.pool.connection() as conn, conn.transaction():
        cron = await cron_repo.get(conn, tenant, cron_id, lock=True)
        values = dict(cron, owner=tenant)
        payload = dict(cron["payload"])
        for key in sent:
            payload[key] = getattr(body, key)
        if "config" in sent:
            payload["config"] = _with_cron_id(body.config, cron_id)
        values["payload"] = payload
        if body.metadata is not None:
            values["metadata"] = {**cron["metadata"], **body.metadata}
        if schedule is not None:
            values["schedule"] = schedule
        if "timezone" in sent:
            values["timezone"] = timezone
        if "end_time" in sent:
            values["end_time"] = end_time
        if "on_run_completed" in sent and cron["thread_id"] is None:
            values["on_run_completed"] = body.on_run_completed or "delete"
        reenabled = "enabled" in sent and body.enabled and not cron["enabled"]
        if "enabled" in sent:
            values["enabled"] = body.enabled
        if schedule is not None or "timezone" in sent or reenabled:
            values["next_run_date"] = next_tick(values["schedule"], values["timezone"], now())
        assistant = ctx.system_assistants.get(str(cron["assistant_id"]))
        if assistant is not None:
            _validate_run(tenant, values, assistant)
        else:
            run_request(values)
        updated = await cron_repo.update(conn, values)
        if sealed is not None:
            await cron_repo.store_secret(conn, cron_id, sealed)
        return cron_repo.cron_out(updated)


async def delete(ctx: ServerContext, tenant: str, cron_id: uuid.UUID) -> None:
    async with ctx.pool.connection() as conn:
        await cron_repo.delete(conn, tenant, cron_id)


def _assistant_filter(ctx: ServerContext, value: str | None) -> uuid.UUID | None:
    if value is None:
        return None
    try:
        return assistant_uuid(ctx, value)
    except NotFound:
        raise Invalid(f"assistant_id must be a UUID or a graph id, got {value!r}") from None


async def search(
    ctx: ServerContext,
    tenant: str,
    *,
    assistant_id: str | None,
    thread_id: uuid.UUID | None,
    enabled: bool | None,
    metadata: dict[str, Any] | None,
    limit: int,
    offset: int,
    sort_by: str,
    sort_order: str,
) -> tuple[list[dict[str, Any]], int]:
    async with ctx.pool.connection() as conn:
        rows, total = await cron_repo.search(
            conn,
            tenant,
            assistant_id=_assistant_filter(ctx, assistant_id),
            thread_id=thread_id,
            enabled=enabled,
            metadata=metadata,
            limit=limit,
            offset=offset,
            sort_by=sort_by,
            sort_order=sort_order,
        )
    return [cron_repo.cron_out(r) for r in rows], total


async def count(
    ctx: ServerContext,
    tenant: str,
    *,
    assistant_id: str | None,
    thread_id: uuid.UUID | None,
    enabled: bool | None,
    metadata: dict[str, Any] | None,
) -> int:
    async with ctx.pool.connection() as conn:
        return await cron_repo.count(conn, tenant, _assistant_filter(ctx, assistant_id), thread_id, enabled, metadata)
