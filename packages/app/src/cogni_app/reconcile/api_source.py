"""LiteLLMSpendLogsApiSource: LiteLLM's own `GET /spend/logs`, for deployments where LiteLLM has its DB.

What the API offers (LiteLLM proxy, `spend_management_endpoints.view_spend_logs`):
- Query params `api_key`, `user_id` (LiteLLM's internal user, NOT the request's `user`/end_user),
  `request_id`, `start_date` / `end_date` (format `YYYY-MM-DD`, compared with `startTime`), and
  `summary` (default true: with a date range the answer is aggregated per day; `summary=false`
  returns the individual rows). Auth: `Authorization: Bearer <master key>`.
- Each row (`LiteLLM_SpendLogs`): `request_id` (= `x-litellm-call-id`), `spend`, `prompt_tokens`,
  `completion_tokens`, `total_tokens`, `model`, `model_group`, `end_user`, `startTime`, `endTime`,
  `status`, and `metadata` (JSON; carries `spend_logs_metadata`, and `error_information` on failures).

There is no end_user or metadata filter, so this source asks for individual rows over a day-granular
date window and filters by end_user and `metadata.spend_logs_metadata.run_id` itself.
"""

from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx

from cogni_app.reconcile.facts import account_of, key_account_of
from cogni_app.reconcile.records import (
    EPOCH,
    Position,
    SpendLogRecord,
    as_datetime,
    as_decimal,
    as_dict,
    as_int,
)


def record_from_api_row(row: dict[str, Any]) -> SpendLogRecord | None:
    """Map one `/spend/logs` row; rows without a request id are not billable units."""
    call_id = row.get("request_id")
    if not call_id:
        return None
    metadata = as_dict(row.get("metadata"))
    error = as_dict(metadata.get("error_information"))
    status = row.get("status") or metadata.get("status") or "success"
    return SpendLogRecord(
        call_id=str(call_id),
        end_user=(str(row["end_user"]) if row.get("end_user") else None),
        spend=as_decimal(row.get("spend")),
        prompt_tokens=as_int(row.get("prompt_tokens")),
        completion_tokens=as_int(row.get("completion_tokens")),
        model=row.get("model") or None,
        model_group=row.get("model_group") or None,
        status=str(status),
        metadata=as_dict(metadata.get("spend_logs_metadata")),
        start_time=as_datetime(row.get("startTime")),
        end_time=as_datetime(row.get("endTime")),
        error_code=(str(error["error_code"]) if error.get("error_code") else None),
        position_at=as_datetime(row.get("startTime")) or as_datetime(row.get("endTime")),
        key_account=key_account_of(metadata.get("user_api_key_alias"), row.get("user")),
    )


class LiteLLMSpendLogsApiSource:
    """Spend-log reader over LiteLLM's HTTP API (LiteLLM in database mode)."""

    name = "litellm_api"

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        run_lookback: timedelta = timedelta(days=1),
        timeout_seconds: float = 30.0,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self.run_lookback = run_lookback
        self.timeout_seconds = timeout_seconds

    async def _rows(self, start_day: date, end_day: date) -> list[SpendLogRecord]:
        params = {"start_date": start_day.isoformat(), "end_date": end_day.isoformat(), "summary": "false"}
        async with httpx.AsyncClient(timeout=self.timeout_seconds) as client:
            response = await client.get(
                f"{self.base_url}/spend/logs", params=params, headers={"Authorization": f"Bearer {self.api_key}"}
            )
        response.raise_for_status()
        body = response.json()
        rows = body.get("data") if isinstance(body, dict) else body
        if not isinstance(rows, list):
            raise ValueError(f"/spend/logs answered {type(body).__name__}, expected a list of spend logs")
        records = (record_from_api_row(row) for row in rows if isinstance(row, dict))
        return [r for r in records if r is not None]

    @staticmethod
    def _window(start: datetime) -> tuple[date, date]:
        """Day-granular window covering `start`..now (end_date is inclusive of its midnight only)."""
        today = datetime.now(UTC).date()
        return start.astimezone(UTC).date(), today + timedelta(days=1)

    async def for_run(self, billing_account_id: str, run_id: str) -> list[SpendLogRecord]:
        start_day, end_day = self._window(datetime.now(UTC) - self.run_lookback)
        records = await self._rows(start_day, end_day)
        return [r for r in records if account_of(r) == billing_account_id and r.run_id == run_id]

    async def after(self, position: Position | None, *, limit: int) -> list[SpendLogRecord]:
        """By (startTime, request id): the API filters by day only, so the day of `position` is read again."""
        start_day, end_day = self._window(position[0] if position else EPOCH)
        records = await self._rows(start_day, end_day)
        later = sorted((r for r in records if position is None or r.position > position), key=lambda r: r.position)
        return later[:limit]

    async def prune(self, *, keep_days: int, reconciled_through: Position) -> int:
        """LiteLLM's own table: its retention is LiteLLM's business (`maximum_spend_logs_retention_period`)."""
        return 0

    async def since(self, start: datetime) -> list[SpendLogRecord]:
        start_day, end_day = self._window(start)
        records = await self._rows(start_day, end_day)
        kept = []
        for record in records:
            when = record.end_time or record.start_time
            if when is None or when >= start:
                kept.append(record)
        return kept
