"""Request bodies. Unknown fields are rejected (extra="forbid") so nothing is silently dropped;
fields we know but do not implement are rejected with a 422 naming them (see ``unsupported``)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

StreamModeName = Literal[
    "values", "updates", "messages", "messages-tuple", "custom", "debug", "tasks", "checkpoints", "events"
]
Json = dict[str, Any]
MAX_OFFSET = 2**31 - 1  # pagination offsets beyond this are certainly mistakes (and overflow SQL)


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CommandBody(Strict):
    resume: Any = None
    update: Any = None
    goto: Any = None


class RunCreateBody(Strict):
    assistant_id: str
    input: Any = None
    command: CommandBody | None = None
    config: Json | None = None
    context: Json | None = None
    metadata: Json | None = None
    stream_mode: StreamModeName | list[StreamModeName] = "values"
    stream_subgraphs: bool = False
    stream_resumable: bool = False
    checkpoint: Json | None = None
    checkpoint_id: str | None = None
    checkpoint_during: bool | None = None
    interrupt_before: Literal["*"] | list[str] | None = None
    interrupt_after: Literal["*"] | list[str] | None = None
    feedback_keys: list[str] | None = None
    webhook: str | None = None
    multitask_strategy: Literal["reject", "interrupt", "rollback", "enqueue"] = "enqueue"
    if_not_exists: Literal["create", "reject"] = "reject"
    on_disconnect: Literal["cancel", "continue"] = "continue"
    on_completion: Literal["delete", "keep"] | None = None
    after_seconds: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    durability: Literal["sync", "async", "exit"] | None = None
    strict_resume: bool | None = None
    langsmith_tracer: Json | None = None

    def unsupported(self) -> list[str]:
        """Known fields this server does not implement, when set to something that needs them."""
        names = []
        if self.feedback_keys:
            names.append("feedback_keys")
        if self.webhook:
            names.append("webhook")
        if self.langsmith_tracer:
            names.append("langsmith_tracer")
        if self.strict_resume:
            names.append("strict_resume")
        return names


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
