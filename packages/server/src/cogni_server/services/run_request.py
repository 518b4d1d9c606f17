"""What a caller asks for when it creates a run: the domain model behind every way to start one
(the HTTP bodies, crons, the thread-streaming ``run.start`` command).

Unknown fields are refused (``extra="forbid"``) and fields we know but do not implement are named by
``unsupported()``, so nothing a client sends is dropped silently.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from cogni_server.serde import TOO_DEEP, json_depth_exceeds

StreamModeName = Literal[
    "values", "updates", "messages", "messages-tuple", "custom", "debug", "tasks", "checkpoints", "events"
]
Json = dict[str, Any]
MultitaskStrategy = Literal["reject", "interrupt", "rollback", "enqueue"]
Durability = Literal["sync", "async", "exit"]


class Strict(BaseModel):
    """A request body: unknown fields refused, JSON nesting bounded (``serde.MAX_JSON_DEPTH``), so a body
    the database could not store is a 422 here rather than a failure at the insert."""

    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _bounded_nesting(cls, data: Any) -> Any:
        if json_depth_exceeds(data):
            raise ValueError(TOO_DEEP)
        return data


class RunCommand(Strict):
    resume: Any = None
    update: Any = None
    goto: Any = None


class RunRequest(Strict):
    assistant_id: str
    input: Any = None
    command: RunCommand | None = None
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
    multitask_strategy: MultitaskStrategy = "enqueue"
    if_not_exists: Literal["create", "reject"] = "reject"
    on_disconnect: Literal["cancel", "continue"] = "continue"
    on_completion: Literal["delete", "keep"] | None = None
    after_seconds: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    durability: Durability | None = None
    strict_resume: bool | None = None
    langsmith_tracer: Json | None = None

    def unsupported(self) -> list[str]:
        """Known fields this server does not implement, when set to something that needs them."""
        names = []
        if self.feedback_keys:
            names.append("feedback_keys")
        if self.langsmith_tracer:
            names.append("langsmith_tracer")
        if self.strict_resume:
            names.append("strict_resume")
        return names

    def stream_modes(self, *, force_values: bool = False) -> list[str]:
        """The requested modes, de-duplicated in order; ``values`` added when the caller needs it."""
        modes: list[str] = [self.stream_mode] if isinstance(self.stream_mode, str) else list(self.stream_mode)
        modes = list(dict.fromkeys(modes)) or ["values"]
        if force_values and "values" not in modes:
            modes.append("values")
        return modes

    def durability_mode(self) -> Durability | None:
        """``durability``, or the older ``checkpoint_during`` flag expressed as one."""
        if self.durability is None and self.checkpoint_during is not None:
            return "async" if self.checkpoint_during else "exit"
        return self.durability
