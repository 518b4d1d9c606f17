"""Search pages: order defaults, ``select`` checks and the pagination headers clients follow."""

from __future__ import annotations

from typing import Any, Protocol, TypedDict

from fastapi.responses import Response

from cogni_server.api.responses import JSONResponse
from cogni_server.errors import Invalid


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
        raise Invalid(f"unknown select field(s): {sorted(unknown)}")


def page_response(rows: list[dict[str, Any]], total: int, offset: int, select: list[str] | None) -> Response:
    """One page of search results: the selected fields, with the pagination headers clients follow."""
    return JSONResponse(select_fields(rows, select), headers=pagination_headers(total, offset, len(rows)))


def select_fields(rows: list[dict[str, Any]], select: list[str] | None) -> list[dict[str, Any]]:
    if not select:
        return rows
    return [{k: row.get(k) for k in select} for row in rows]
