"""What a run needs to execute, as one typed, versioned model stored in the run row's ``kwargs``.

Written by the run service (``dump_run_settings``) and read by the executor and the routes
(``load_run_settings``): nothing else reads ``kwargs`` by string keys. Version 1 rows (written before
the model existed, without a ``version`` key) have the same fields and still load; a version this
code does not know fails loudly rather than running with defaults.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

CURRENT_VERSION = 2
KNOWN_VERSIONS = (1, 2)
Durability = Literal["sync", "async", "exit"]
InterruptAt = Literal["*"] | list[str] | None


class UnknownRunSettings(ValueError):
    """A stored run was written by a newer (or broken) version of the server."""


class RunSettings(BaseModel):
    """The execution settings of one run; immutable once the run is inserted."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: Literal[2] = 2
    input: Any = None
    command: dict[str, Any] | None = None
    config: dict[str, Any] = Field(default_factory=dict)
    context: dict[str, Any] = Field(default_factory=dict)
    stream_mode: list[str] = Field(default_factory=lambda: ["values"])
    stream_subgraphs: bool = False
    stream_resumable: bool = False
    interrupt_before: InterruptAt = None
    interrupt_after: InterruptAt = None
    checkpoint: dict[str, Any] | None = None
    checkpoint_id: str | None = None
    durability: Durability | None = None
    on_disconnect: Literal["cancel", "continue"] = "continue"
    temporary: bool = False  # a stateless run's thread, deleted when the run ends
    webhook: str | None = None
    feedback_keys: list[str] | None = None
    protocol: bool = False  # started through the thread-streaming commands: executes in v3 mode
    # the creating request's W3C trace context (traceparent, tracestate), continued by whichever worker
    # runs it; stored only when tracing is on (see cogni_server.runs.tracing)
    trace_carrier: dict[str, str] | None = None
    # the run was given a per-account LLM key (stored encrypted in run_secrets, never here); stored only when true
    llm_key: bool = False


def dump_run_settings(settings: RunSettings) -> dict[str, Any]:
    """The JSON stored in ``runs.kwargs`` (and shown to clients as the run's ``kwargs``)."""
    exclude = {name for name in ("trace_carrier", "llm_key") if not getattr(settings, name)}
    return settings.model_dump(exclude=exclude)  # rows of untraced runs without a key stay as they were


def load_run_settings(raw: Mapping[str, Any]) -> RunSettings:
    """Read ``runs.kwargs`` of any known version; raise ``UnknownRunSettings`` for anything else."""
    version = raw.get("version", 1)
    if version not in KNOWN_VERSIONS:
        raise UnknownRunSettings(
            f"run settings version {version!r} is not known to this server (knows {list(KNOWN_VERSIONS)});"
            " was the run written by a newer release?"
        )
    data = dict(raw)
    if version == 1:  # same fields, some stored as null where the model has a default
        data = {k: v for k, v in data.items() if v is not None or k in _NULLABLE}
    data["version"] = CURRENT_VERSION
    try:
        return RunSettings.model_validate(data)
    except ValidationError as exc:
        raise UnknownRunSettings(f"stored run settings do not load: {exc}") from exc


_NULLABLE = frozenset(
    name for name, field in RunSettings.model_fields.items() if field.default is None and name != "version"
)
