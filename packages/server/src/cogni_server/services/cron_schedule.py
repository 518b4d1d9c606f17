"""Cron schedules, time zones and end times: validation (422 naming the value) and the next tick.

Schedules are parsed by ``croniter``: five fields (minute hour day-of-month month day-of-week),
names (``MON-FRI``), ``L``, and the ``@hourly``-style shortcuts. A sixth field is seconds in
croniter; it is refused unless ``COGNI_CRON_ALLOW_SECONDS`` is set (tests use it to tick every
second). Ticks are computed in the cron's time zone (IANA name, default UTC) and stored in UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter

from cogni_server.errors import Invalid


def check_schedule(schedule: str, *, allow_seconds: bool) -> str:
    """The schedule, stripped, when croniter reads it and it has the allowed number of fields."""
    text = schedule.strip()
    if not text or not croniter.is_valid(text):
        raise Invalid(f"Invalid cron schedule: {schedule!r}")
    fields = len(text.split())
    if not text.startswith("@") and fields != 5 and not (allow_seconds and fields == 6):
        raise Invalid(
            f"Invalid cron schedule: {schedule!r}: schedules have 5 fields (minute hour day-of-month month"
            " day-of-week); seconds and years are not supported"
        )
    return text


def check_timezone(name: str | None) -> str | None:
    if name is None:
        return None
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise Invalid(f"Invalid timezone: {name!r}. Use IANA timezone format (e.g. 'America/New_York').") from None
    return name


def parse_end_time(value: str | None) -> datetime | None:
    """ISO 8601 (``Z`` accepted); a time without an offset is UTC."""
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except (TypeError, ValueError):
        raise Invalid(f"end_time must be an ISO 8601 date-time, got {value!r}") from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def next_tick(schedule: str, timezone: str | None, after: datetime) -> datetime:
    """The first tick of ``schedule`` strictly after ``after``, in UTC."""
    zone = ZoneInfo(timezone or "UTC")
    start = after.astimezone(zone)
    nxt: datetime = croniter(schedule, start).get_next(datetime)
    return nxt.astimezone(UTC)


def now() -> datetime:
    return datetime.now(UTC)
