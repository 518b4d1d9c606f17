"""Request bodies. Unknown fields are rejected (extra="forbid") so nothing is silently dropped;
fields we know but do not implement are rejected with a 422 naming them (see ``RunRequest.unsupported``)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from cogni_server.services.run_request import Json, RunRequest, Strict

MAX_OFFSET = 2**31 - 1  # pagination offsets beyond this are certainly mistakes (and overflow SQL)


class RunCreateBody(RunRequest):
    """The body of every run-creating route: exactly the domain's run request."""


class BatchRunBody(RunCreateBody):
    thread_id: str | None = None


class ThreadCreateBody(Strict):
    thread_id: str | None = None
    metadata: Json | None = None
    if_exists: Literal["raise", "do_nothing"] = "raise"
    supersteps: list[Any] | None = None
    graph_id: str | None = None
    ttl: Any = None


class ThreadPatchBody(Strict):
    metadata: Json = Field(default_factory=dict)
    ttl: Any = None


ThreadSortBy = Literal["thread_id", "status", "created_at", "updated_at", "state_updated_at"]


class ThreadSearchBody(Strict):
    metadata: Json | None = None
    values: Json | None = None
    ids: list[str] | None = None
    status: Literal["idle", "busy", "interrupted", "error"] | None = None
    limit: int = Field(default=10, ge=1, le=1000)
    offset: int = Field(default=0, ge=0, le=MAX_OFFSET)
    sort_by: ThreadSortBy | None = None
    sort_order: Literal["asc", "desc"] | None = None
    select: list[str] | None = None
    extract: Json | None = None


class ThreadCountBody(Strict):
    metadata: Json | None = None
    values: Json | None = None
    status: Literal["idle", "busy", "interrupted", "error"] | None = None


class ThreadPruneBody(Strict):
    thread_ids: list[str]
    strategy: Literal["delete", "keep_latest"] = "delete"


class StateUpdateBody(Strict):
    values: Any = None
    as_node: str | None = None
    checkpoint: Json | None = None
    checkpoint_id: str | None = None


class StateCheckpointBody(Strict):
    checkpoint: Json
    subgraphs: bool = False
    select: list[str] | None = None


class HistoryBody(Strict):
    limit: int = Field(default=10, ge=1, le=1000)
    before: Json | str | None = None
    metadata: Json | None = None
    checkpoint: Json | None = None
    select: list[str] | None = None


class AssistantCreateBody(Strict):
    graph_id: str
    assistant_id: str | None = None
    config: Json | None = None
    context: Json | None = None
    metadata: Json | None = None
    if_exists: Literal["raise", "do_nothing"] = "raise"
    name: str | None = None
    description: str | None = None


class AssistantPatchBody(Strict):
    graph_id: str | None = None
    config: Json | None = None
    context: Json | None = None
    metadata: Json | None = None
    name: str | None = None
    description: str | None = None


AssistantSortBy = Literal["assistant_id", "graph_id", "name", "created_at", "updated_at"]


class AssistantSearchBody(Strict):
    metadata: Json | None = None
    graph_id: str | None = None
    name: str | None = None
    limit: int = Field(default=10, ge=1, le=1000)
    offset: int = Field(default=0, ge=0, le=MAX_OFFSET)
    sort_by: AssistantSortBy | None = None
    sort_order: Literal["asc", "desc"] | None = None
    select: list[str] | None = None


class AssistantCountBody(Strict):
    metadata: Json | None = None
    graph_id: str | None = None
    name: str | None = None


class AssistantVersionsBody(Strict):
    metadata: Json | None = None
    limit: int = Field(default=10, ge=1, le=1000)
    offset: int = Field(default=0, ge=0, le=MAX_OFFSET)


class AssistantLatestBody(Strict):
    version: int


class BulkCancelBody(Strict):
    thread_id: str | None = None
    run_ids: list[str] | None = None
    status: Literal["pending", "running", "all"] | None = None
