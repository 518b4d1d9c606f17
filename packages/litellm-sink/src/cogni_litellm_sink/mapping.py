"""Pure mapping from LiteLLM's `standard_logging_object` to one spend-log row."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import astuple, dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any


@dataclass(frozen=True)
class SpendRow:
    """One row of `litellm_spend_logs`, field order = `schema.COLUMNS`."""

    call_id: str
    provider_response_id: str | None
    end_user: str | None
    spend: Decimal
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    model: str | None
    model_group: str | None
    status: str
    error_code: str | None
    spend_logs_metadata: dict[str, Any] = field(default_factory=dict)
    request_tags: list[Any] = field(default_factory=list)
    start_time: datetime | None = None
    end_time: datetime | None = None
    key_hash: str | None = None
    key_alias: str | None = None
    key_user_id: str | None = None

    def values(self) -> tuple[Any, ...]:
        """Positional values for `schema.UPSERT` (JSON columns as text)."""
        raw = list(astuple(self))
        raw[11] = json.dumps(self.spend_logs_metadata, default=str)
        raw[12] = json.dumps(self.request_tags, default=str)
        return tuple(raw)


def _text(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def _int(value: Any) -> int:
    try:
        return max(int(value or 0), 0)
    except (TypeError, ValueError):
        return 0


def _decimal(value: Any) -> Decimal:
    try:
        number = Decimal(str(value if value is not None else 0))
    except InvalidOperation:
        return Decimal(0)
    return number if number.is_finite() and number >= 0 else Decimal(0)


def _time(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, int | float):
        return datetime.fromtimestamp(float(value), tz=UTC)
    return None


def _metadata(value: Any) -> dict[str, Any]:
    """`spend_logs_metadata` as a dict (LiteLLM parses the header; tolerate a raw JSON string)."""
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, str) and value.strip():
        try:
            parsed = json.loads(value)
        except ValueError:
            return {"raw": value}
        return dict(parsed) if isinstance(parsed, Mapping) else {"raw": parsed}
    return {}


def _key_fields(metadata: Mapping[str, Any]) -> dict[str, Any]:
    """The key LiteLLM's auth resolved for the call: its hash (never the key), alias and user (the account)."""
    return {
        "key_hash": _text(metadata.get("user_api_key_hash")),
        "key_alias": _text(metadata.get("user_api_key_alias")),
        "key_user_id": _text(metadata.get("user_api_key_user_id")),
    }


def row_from_standard_logging_object(payload: Mapping[str, Any], *, status: str | None = None) -> SpendRow:
    """Map one `standard_logging_object`; `status` overrides the payload's (for failure events).

    Failures always cost 0: the upstream was not paid for an answer that never came.
    """
    call_id = _text(payload.get("litellm_call_id"))
    if call_id is None:
        raise ValueError("standard_logging_object has no litellm_call_id")
    final_status = status or _text(payload.get("status")) or "success"
    if final_status not in ("success", "failure"):
        final_status = "failure"
    metadata = payload.get("metadata") or {}
    error = payload.get("error_information") or {}
    prompt = _int(payload.get("prompt_tokens"))
    completion = _int(payload.get("completion_tokens"))
    tags = payload.get("request_tags")
    response_id = _text(payload.get("id"))
    if response_id == call_id:  # LiteLLM fills `id` with its own call id when no provider answered
        response_id = None
    return SpendRow(
        call_id=call_id,
        provider_response_id=response_id,
        end_user=_text(payload.get("end_user")),
        spend=Decimal(0) if final_status == "failure" else _decimal(payload.get("response_cost")),
        prompt_tokens=prompt,
        completion_tokens=completion,
        total_tokens=_int(payload.get("total_tokens")) or prompt + completion,
        model=_text(payload.get("model")),
        model_group=_text(payload.get("model_group")),
        status=final_status,
        error_code=_text(error.get("error_code")) if isinstance(error, Mapping) else None,
        spend_logs_metadata=_metadata(metadata.get("spend_logs_metadata")),
        request_tags=list(tags) if isinstance(tags, list | tuple) else [],
        start_time=_time(payload.get("startTime")),
        end_time=_time(payload.get("endTime")),
        **_key_fields(metadata if isinstance(metadata, Mapping) else {}),
    )


def row_from_callback_kwargs(kwargs: Mapping[str, Any], *, status: str) -> SpendRow:
    """Map a callback's kwargs; falls back to the bare call id when LiteLLM built no payload."""
    payload = kwargs.get("standard_logging_object")
    if isinstance(payload, Mapping) and payload.get("litellm_call_id"):
        return row_from_standard_logging_object(payload, status=status)
    call_id = _text(kwargs.get("litellm_call_id"))
    if call_id is None:
        raise ValueError("callback kwargs carry neither a standard_logging_object nor a litellm_call_id")
    exception = kwargs.get("exception")
    code = getattr(exception, "status_code", None) if exception is not None else None
    params = kwargs.get("litellm_params") or {}
    meta = params.get("metadata") or {}
    return SpendRow(
        call_id=call_id,
        provider_response_id=None,
        end_user=_text(kwargs.get("user")),
        spend=Decimal(0) if status == "failure" else _decimal(kwargs.get("response_cost")),
        prompt_tokens=0,
        completion_tokens=0,
        total_tokens=0,
        model=_text(kwargs.get("model")),
        model_group=_text(meta.get("model_group")),
        status=status,
        error_code=_text(code),
        spend_logs_metadata=_metadata(meta.get("spend_logs_metadata")),
        start_time=_time(kwargs.get("start_time")),
        end_time=_time(kwargs.get("end_time")),
        **_key_fields(meta if isinstance(meta, Mapping) else {}),
    )


def _field(source: Any, name: str) -> Any:
    """`source.name` or `source[name]`: LiteLLM hands objects and dicts alike."""
    if isinstance(source, Mapping):
        return source.get(name)
    return getattr(source, name, None)


def usage_of(response: Any) -> Any:
    """The `usage` a response or stream chunk carries (None when it carries none)."""
    usage = _field(response, "usage")
    return usage if usage else None


def row_before_response(
    request_data: Mapping[str, Any], response: Any, usage: Any, cost: Any, *, now: datetime | None = None
) -> SpendRow:
    """The row written before the client sees a call's cost, from the proxy's request data and response.

    It carries what the reconciler bills by (call id, end user, spend, tokens, the spend-logs
    metadata); LiteLLM's success callback later upserts the complete row under the same call id.
    """
    call_id = _text(request_data.get("litellm_call_id"))
    if call_id is None:
        raise ValueError("request data has no litellm_call_id")
    metadata = request_data.get("metadata") or request_data.get("litellm_metadata") or {}
    if not isinstance(metadata, Mapping):
        metadata = {}
    logging_obj = request_data.get("litellm_logging_obj")
    prompt = _int(_field(usage, "prompt_tokens"))
    completion = _int(_field(usage, "completion_tokens"))
    tags = metadata.get("tags")
    return SpendRow(
        call_id=call_id,
        provider_response_id=_text(_field(response, "id")),
        end_user=_text(request_data.get("user")),
        spend=_decimal(cost),
        prompt_tokens=prompt,
        completion_tokens=completion,
        total_tokens=_int(_field(usage, "total_tokens")) or prompt + completion,
        model=_text(_field(response, "model")),
        model_group=_text(metadata.get("model_group")) or _text(request_data.get("model")),
        status="success",
        error_code=None,
        spend_logs_metadata=_metadata(metadata.get("spend_logs_metadata")),
        request_tags=list(tags) if isinstance(tags, list | tuple) else [],
        start_time=_time(getattr(logging_obj, "start_time", None)),
        end_time=now or datetime.now(UTC),
        **_key_fields(metadata),
    )
