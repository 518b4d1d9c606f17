"""The TTL a thread gets: the request's ``ttl`` (``{"ttl": <minutes>, "strategy": ...}``) or
langgraph.json's ``checkpointer.ttl.default_ttl``. Kept apart from the sweeper so run creation can
use it without importing thread deletion.
"""

from __future__ import annotations

from typing import Any

from cogni_server.errors import Invalid
from cogni_server.graphs.webhooks_config import TTL_STRATEGIES
from cogni_server.services.context import ServerContext


def parse_ttl(raw: Any) -> tuple[float, str]:
    """(minutes, strategy) of a request's ``ttl``; 422 for anything else."""
    if not isinstance(raw, dict):
        raise Invalid(f'ttl must be an object {{"ttl": <minutes>, "strategy": "delete"}}, got {raw!r}')
    if unknown := set(raw) - {"ttl", "strategy"}:
        raise Invalid(f"unknown field(s) in ttl: {sorted(unknown)}")
    minutes = raw.get("ttl")
    if isinstance(minutes, bool) or not isinstance(minutes, int | float) or not minutes > 0 or minutes == float("inf"):
        raise Invalid(f"ttl.ttl must be a positive number of minutes, got {minutes!r}")
    strategy = raw.get("strategy") or "delete"
    if strategy not in TTL_STRATEGIES:
        raise Invalid(f"ttl.strategy must be one of {list(TTL_STRATEGIES)}, got {strategy!r}")
    return float(minutes), strategy


def ttl_for_new_thread(ctx: ServerContext, raw: Any) -> tuple[float, str] | None:
    """The request's TTL, else the configured default, else none."""
    if raw is not None:
        return parse_ttl(raw)
    default = ctx.thread_ttl.default_minutes
    return (default, ctx.thread_ttl.strategy) if default else None
