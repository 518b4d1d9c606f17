"""`core__get_current_time`: the current time, so a graph can speak of the present moment."""

from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from langchain_core.tools import StructuredTool
from pydantic import BaseModel, Field

from cogni_graphs.tools.errors import ToolArgumentError


class CurrentTimeArgs(BaseModel):
    timezone: str = Field(default="UTC", description="IANA time zone name, e.g. 'Europe/Berlin'", max_length=64)


async def get_current_time(timezone: str = "UTC") -> dict[str, Any]:
    """The current time in `timezone` as ISO 8601, with the weekday."""
    try:
        zone = ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ToolArgumentError(f"unknown time zone {timezone!r}") from None
    now = datetime.now(UTC).astimezone(zone)
    return {"now": now.isoformat(timespec="seconds"), "timezone": timezone, "weekday": now.strftime("%A")}


get_current_time_tool = StructuredTool.from_function(
    coroutine=get_current_time,
    name="core__get_current_time",
    description="Get the current date and time (ISO 8601) in a time zone (default UTC).",
    args_schema=CurrentTimeArgs,
)
