"""What every route needs: the app's shared state, the caller's tenant, id parsing, JSON responses."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any, Protocol, TypedDict

from fastapi import HTTPException, Request
from fastapi.responses import Response
from psycopg_pool import AsyncConnectionPool

from cogni_server.auth import Authenticator, AuthError, Principal
from cogni_server.config import Settings
from cogni_server.graphs import GraphRegistry
from cogni_server.runs.executor import Executor
from cogni_server.runs.worker import WorkerPool
from cogni_server.serde import dumps
from cogni_server.streaming import StreamBroker


@dataclass
class AppState:
    settings: Settings
    pool: AsyncConnectionPool[Any]
    checkpointer: Any
    registry: GraphRegistry
    broker: StreamBroker
    executor: Executor
    workers: WorkerPool
    authenticator: Authenticator
    system_assistants: dict[str, dict[str, Any]]  # graph id and assistant id -> row (read-only rows)


class JSONResponse(Response):
    """orjson with LangGraph's conventions (messages, interrupts, datetimes)."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return dumps(content)


def app_state(request: Request) -> AppState:  # plain function: called directly, never as a dependency
    return request.app.state.cogni


async def principal(request: Request) -> Principal:
    """FastAPI dependency: authenticate the caller; its tenant scopes every query.

    Async on purpose: FastAPI runs sync dependencies in a thread pool, a cost paid on every request.
    """
    state: AppState = request.app.state.cogni
    try:
        return state.authenticator.authenticate(request.headers)
    except AuthError as exc:
        raise HTTPException(status_code=exc.status_code, detail=exc.message) from exc


def parse_id(value: str, what: str) -> uuid.UUID:
    """A path or body id that must be a UUID; anything else answers 422 naming it."""
    try:
        return uuid.UUID(str(value))
    except (ValueError, TypeError, AttributeError):
        raise HTTPException(status_code=422, detail=f"{what} must be a UUID, got {value!r}") from None


def query_list(values: list[str] | None, what: str) -> list[str]:
    """A list in the query string, as either client sends it.

    The Python client repeats the parameter (``?select=a&select=b``); the JS client sends one
    JSON-encoded array (``?select=["a","b"]``). Empty values (``?stream_mode=``) mean "not given".
    """
    out: list[str] = []
    for value in values or ():
        text = value.strip()
        if text.startswith("["):
            try:
                items = json.loads(text)
            except ValueError:
                raise HTTPException(422, detail=f"{what} is not a valid JSON array: {value!r}") from None
            if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
                raise HTTPException(422, detail=f"{what} must be a list of strings, got {value!r}")
            out.extend(i for i in items if i)
        elif text:
            out.append(text)
    return out


def pagination_headers(total: int, offset: int, returned: int) -> dict[str, str]:
    headers = {"X-Pagination-Total": str(total)}
    if offset + returned < total:
        headers["X-Pagination-Next"] = str(offset + returned)
    return headers


class _PagedBody(Protocol):
    @property
    def limit(self) -> int: ...
    @property
    def offset(self) -> int: ...
    @property
    def sort_by(self) -> str | None: ...
    @property
    def sort_order(self) -> str | None: ...


class PageArgs(TypedDict):
    limit: int
    offset: int
    sort_by: str
    sort_order: str


def page_args(body: _PagedBody) -> PageArgs:
    """A search body's page and order, with the defaults (newest first) both searches share."""
    return PageArgs(
        limit=body.limit,
        offset=body.offset,
        sort_by=body.sort_by or "created_at",
        sort_order=body.sort_order or "desc",
    )


def check_select(select: list[str] | None, allowed: frozenset[str] | set[str]) -> None:
    """A search's ``select`` may only name fields the resource has: anything else is a 422 naming them."""
    if select and (unknown := set(select) - allowed):
        raise HTTPException(422, detail=f"unknown select field(s): {sorted(unknown)}")


def page_response(rows: list[dict[str, Any]], total: int, offset: int, select: list[str] | None) -> Response:
    """One page of search results: the selected fields, with the pagination headers clients follow."""
    return JSONResponse(select_fields(rows, select), headers=pagination_headers(total, offset, len(rows)))


def select_fields(rows: list[dict[str, Any]], select: list[str] | None) -> list[dict[str, Any]]:
    if not select:
        return rows
    return [{k: row.get(k) for k in select} for row in rows]
