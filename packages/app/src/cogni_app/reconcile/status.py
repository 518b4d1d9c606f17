"""What the last reconciler sweep saw and did, kept in memory for the operator console."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

MAX_LISTED_DIFFERENCES = 1000
"""A sweep lists at most this many of the calls it found without a receipt (`missing` counts them all)."""


@dataclass
class SweepReport:
    """One sweep: its window ("cursor": the spend log is read from `window_start`), the calls it found
    without a receipt (the differences), how many receipts it created, and its error if it failed."""

    trigger: str
    started_at: datetime
    window_start: datetime | None  # the committed cursor the sweep read from (None: the whole log)
    finished_at: datetime | None = None
    examined: int = 0
    missing: int = 0
    differences: list[dict[str, Any]] = field(default_factory=list)
    created: int = 0
    error: str | None = None
