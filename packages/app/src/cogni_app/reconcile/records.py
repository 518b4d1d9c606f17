"""SpendLogRecord and the SpendLogSource port the reconciler reads through."""

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Protocol

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
Position = tuple[datetime, str]
"""A place in a spend-log source: (time, call id). The reconciler's durable cursor stores one."""


@dataclass(frozen=True)
class SpendLogRecord:
    """One LiteLLM spend-log row, whichever store it came from.

    `metadata` is the call's `spend_logs_metadata` (run_id, attempt, graph_id, billing_account_id,
    executor_type, ...), i.e. what the graph sent in the `x-litellm-spend-logs-metadata` header.
    """

    call_id: str
    end_user: str | None
    spend: Decimal
    prompt_tokens: int | None
    completion_tokens: int | None
    model: str | None
    model_group: str | None
    status: str
    metadata: dict[str, Any] = field(default_factory=dict)
    start_time: datetime | None = None
    end_time: datetime | None = None
    error_code: str | None = None
    position_at: datetime | None = None
    """Where the row sits in its source's order (the sink: when it was inserted); see `position`."""
    key_account: str | None = None
    """The billing account of the per-account LiteLLM key that made the call (LiteLLM's `user_api_key_user_id`
    for a key of ours, alias `llm-key:<id>`), None for the shared key. The proxy checked it, the caller cannot
    choose it: when present it decides the account, whatever `user` the request named."""

    @property
    def position(self) -> Position:
        """The row's place in its source: (time, call id), strictly increasing along the source's order."""
        when = self.position_at or self.end_time or self.start_time or EPOCH
        return (when, self.call_id)

    @property
    def run_id(self) -> str | None:
        value = self.metadata.get("run_id")
        return str(value) if value not in (None, "") else None


class SpendLogSource(Protocol):
    """Where the reconciler reads LiteLLM's spend log from."""

    @property
    def name(self) -> str:
        """Names the source's cursor row in the app database (one cursor per source)."""
        ...

    async def after(self, position: Position | None, *, limit: int) -> list[SpendLogRecord]:
        """Up to `limit` calls strictly after `position` (None: from the first), ascending by position."""
        ...

    async def prune(self, *, keep_days: int, reconciled_through: Position) -> int:
        """Retention: delete calls older than `keep_days` at or before `reconciled_through`; returns how many."""
        ...

    async def for_run(self, billing_account_id: str, run_id: str) -> list[SpendLogRecord]:
        """The account's calls (end_user = account) whose metadata.run_id is this run."""
        ...

    async def since(self, start: datetime) -> list[SpendLogRecord]:
        """Every call that ended (or started, if the end is unknown) at or after `start`."""
        ...


def as_dict(value: Any) -> dict[str, Any]:
    """A JSON object that may arrive parsed or as a string; anything else is empty."""
    if isinstance(value, dict):
        return value
    if isinstance(value, str) and value.strip():
        try:
            parsed = json.loads(value)
        except ValueError:
            return {}
        return parsed if isinstance(parsed, dict) else {}
    return {}


def as_decimal(value: Any) -> Decimal:
    try:
        number = Decimal(str(value)) if value is not None else Decimal(0)
    except InvalidOperation:
        return Decimal(0)
    return number if number.is_finite() and number >= 0 else Decimal(0)


def as_int(value: Any) -> int | None:
    try:
        return max(int(value), 0) if value is not None else None
    except (TypeError, ValueError):
        return None


def as_datetime(value: Any) -> datetime | None:
    """ISO strings (with `Z` or offset; naive is taken as UTC), epoch seconds, or datetimes."""
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, int | float):
        return datetime.fromtimestamp(float(value), tz=UTC)
    if isinstance(value, str) and value.strip():
        try:
            parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            return None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return None
