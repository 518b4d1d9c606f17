"""Authorization with the project's ``@auth.on`` handlers (custom auth only).

A handler sees the action's value and may reject it (``False``, or ``Auth.exceptions.HTTPException``),
mutate it (metadata on create, the namespace of a store operation), or return a filter on metadata
(``{"owner": id}``, ``{"k": {"$eq": v}}``, ``{"k": {"$contains": v}}``). Filters narrow what the caller
sees inside its own tenant: a search only returns matching rows, and a get, update or delete of a
row that does not match answers 404 as if the row did not exist. Without custom auth every function
here is a no-op, so the built-in modes are untouched.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from langgraph_sdk.auth.exceptions import HTTPException as AuthHTTPException
from langgraph_sdk.auth.types import AuthContext

from cogni_server.auth import AuthError, Principal
from cogni_server.auth.custom import CustomAuthenticator
from cogni_server.errors import NotFound
from cogni_server.services import crons as cron_service
from cogni_server.services import threads as thread_service
from cogni_server.services.assistants import resolve_assistant
from cogni_server.services.context import ServerContext

Filters = dict[str, Any]
_IMPOSSIBLE = object()


def enabled(ctx: ServerContext) -> bool:
    return isinstance(ctx.authenticator, CustomAuthenticator)


def _handler(auth: Any, resource: str, action: str) -> Any:
    """The most specific handler: (resource, action), (resource, *), (*, action), then the global one."""
    for key in ((resource, action), (resource, "*"), ("*", action), ("*", "*")):
        handlers = auth._handlers.get(key)
        if handlers:
            return handlers[-1]
    return auth._global_handlers[-1] if auth._global_handlers else None


async def authorize(
    ctx: ServerContext, who: Principal, resource: str, action: str, value: dict[str, Any]
) -> Filters | None:
    """Run the handler for (resource, action) on ``value`` (mutable); returns its filters, if any.

    Raises AuthError: 403 when the handler returns False, its own status and detail when it raises.
    """
    authenticator = ctx.authenticator
    if not isinstance(authenticator, CustomAuthenticator) or who.user is None:
        return None
    handler = _handler(authenticator.auth, resource, action)
    if handler is None:
        return None
    auth_ctx = AuthContext(
        permissions=list(who.user.permissions),
        user=who.user,
        resource=resource,  # type: ignore[arg-type]  # the SDK's Literal of resources
        action=action,  # type: ignore[arg-type]
    )
    try:
        result = await handler(ctx=auth_ctx, value=value)
    except AuthHTTPException as exc:
        raise AuthError(str(exc.detail), exc.status_code) from None
    if result is None or result is True:
        return None
    if result is False:
        raise AuthError(f"Forbidden: not allowed to {action} {resource}", 403)
    if isinstance(result, dict):
        check_filters(result, f"{resource}.{action}")
        return result or None
    raise AuthError(f"auth handler for {resource}.{action} returned {type(result).__name__}", 500)


def check_filters(filters: Mapping[str, Any], where: str) -> None:
    """A filter is ``{key: value}``, ``{key: {"$eq": value}}`` or ``{key: {"$contains": value(s)}}``."""
    for key, cond in filters.items():
        if isinstance(cond, dict) and (len(cond) != 1 or next(iter(cond)) not in ("$eq", "$contains")):
            raise AuthError(f"auth handler for {where}: filter on {key!r} must use one of $eq, $contains", 500)


def matches(metadata: Mapping[str, Any] | None, filters: Filters | None) -> bool:
    """Whether a row's metadata satisfies every filter."""
    meta = metadata or {}
    for key, cond in (filters or {}).items():
        present = meta.get(key)
        if isinstance(cond, dict) and "$contains" in cond:
            wanted = cond["$contains"]
            wanted_all = wanted if isinstance(wanted, list) else [wanted]
            if not isinstance(present, list) or any(w not in present for w in wanted_all):
                return False
        elif (cond["$eq"] if isinstance(cond, dict) else cond) != present or key not in meta:
            return False
    return True


def _containment(filters: Filters) -> dict[str, Any]:
    """The JSONB document a row's metadata must contain (``@>``) to match ``filters``."""
    out: dict[str, Any] = {}
    for key, cond in filters.items():
        if isinstance(cond, dict) and "$contains" in cond:
            wanted = cond["$contains"]
            out[key] = list(wanted) if isinstance(wanted, list) else [wanted]
        else:
            out[key] = cond["$eq"] if isinstance(cond, dict) else cond
    return out


def _merge(a: Any, b: Any) -> Any:
    """One containment document equivalent to containing both ``a`` and ``b``; _IMPOSSIBLE if none is."""
    if isinstance(a, dict) and isinstance(b, dict):
        merged = dict(a)
        for key, value in b.items():
            merged[key] = _merge(merged[key], value) if key in merged else value
            if merged[key] is _IMPOSSIBLE:
                return _IMPOSSIBLE
        return merged
    if isinstance(a, list) and isinstance(b, list):
        return a + [item for item in b if item not in a]
    return a if a == b and type(a) is type(b) else _IMPOSSIBLE


async def search_filter(
    ctx: ServerContext, who: Principal, resource: str, value: dict[str, Any], requested: Mapping[str, Any] | None
) -> tuple[dict[str, Any] | None, bool]:
    """Authorize a search or count of ``resource`` and build its metadata filter (see search_metadata)."""
    return search_metadata(requested, await authorize(ctx, who, resource, "search", value))


def search_metadata(requested: Mapping[str, Any] | None, filters: Filters | None) -> tuple[dict[str, Any] | None, bool]:
    """The metadata filter a search runs with: the caller's AND the handler's; ``(doc, False)`` when
    no row can match both (the search answers empty)."""
    if not filters:
        return (dict(requested) if requested is not None else None), True
    merged = _merge(dict(requested or {}), _containment(filters))
    if merged is _IMPOSSIBLE:
        return None, False
    return merged, True


def _visible(metadata: Mapping[str, Any] | None, filters: Filters | None, what: str) -> None:
    if filters and not matches(metadata, filters):
        raise NotFound(f"{what} not found")


async def check_thread(ctx: ServerContext, who: Principal, thread_id: uuid.UUID, filters: Filters | None) -> None:
    """404 unless the tenant's thread matches ``filters`` (nothing to check without filters)."""
    if filters:
        thread = await thread_service.get(ctx, who.tenant, thread_id)
        _visible(thread.get("metadata"), filters, f"Thread {thread_id}")


async def check_thread_if_exists(
    ctx: ServerContext, who: Principal, thread_id: uuid.UUID | None, filters: Filters | None
) -> None:
    """Like check_thread, for actions that may create the thread (runs with if_not_exists, commands)."""
    if filters and thread_id is not None:
        try:
            await check_thread(ctx, who, thread_id, filters)
        except NotFound:
            try:
                await thread_service.get(ctx, who.tenant, thread_id)
            except NotFound:
                return  # it does not exist yet: the action creates it
            raise


async def check_assistant(ctx: ServerContext, who: Principal, assistant_id: str, filters: Filters | None) -> None:
    if filters:
        assistant = await resolve_assistant(ctx, who.tenant, assistant_id)
        _visible(assistant.get("metadata"), filters, f"Assistant {assistant_id}")


async def check_cron(ctx: ServerContext, who: Principal, cron_id: uuid.UUID, filters: Filters | None) -> None:
    if filters:
        cron = await cron_service.get(ctx, who.tenant, cron_id)
        _visible(cron.get("metadata"), filters, f"Cron {cron_id}")


async def store_namespace(ctx: ServerContext, who: Principal, action: str, value: dict[str, Any]) -> list[str] | None:
    """Run the store handler; the (possibly rewritten) namespace the operation uses.

    Store handlers scope by rewriting ``value["namespace"]``; a filter has no meaning there and is refused.
    """
    if await authorize(ctx, who, "store", action, value):
        raise AuthError(f"auth handler for store.{action} returned a filter: rewrite value['namespace'] instead", 500)
    namespace = value.get("namespace")
    return None if namespace is None else [str(label) for label in namespace]


RUN_COMMANDS = frozenset({"run.start", "input.respond", "state.fork"})


async def authorize_command(ctx: ServerContext, who: Principal, thread_id: uuid.UUID, command: dict[str, Any]) -> None:
    """A thread-streaming command: run-starting ones need ``threads.create_run``, the others
    ``threads.read``; the thread (when it exists) must match the handler's filters."""
    if not enabled(ctx):
        return
    raw = command.get("params")
    params: dict[str, Any] = raw if isinstance(raw, dict) else {}
    if command.get("method") in RUN_COMMANDS:
        value = {"thread_id": thread_id, "assistant_id": params.get("assistant_id"), "run_id": None}
        value.update(metadata=dict(params.get("metadata") or {}), kwargs=dict(params), action=None)
        filters = await authorize(ctx, who, "threads", "create_run", value)
        if value.get("metadata") and command.get("method") == "run.start":  # the handler's stamp reaches the run
            command["params"] = {**params, "metadata": value["metadata"]}
        await check_thread_if_exists(ctx, who, thread_id, filters)
        return
    await check_thread(ctx, who, thread_id, await authorize(ctx, who, "threads", "read", {"thread_id": thread_id}))


async def authorize_thread_read(ctx: ServerContext, who: Principal, thread_id: uuid.UUID) -> None:
    """Reading a thread's event stream: ``threads.read`` allows it (a thread not there yet has no
    metadata to filter on; the stream waits for it)."""
    if enabled(ctx):
        filters = await authorize(ctx, who, "threads", "read", {"thread_id": thread_id})
        await check_thread_if_exists(ctx, who, thread_id, filters)
