"""The background loops of a worker process besides the run workers: the cron scheduler, the
webhook deliverer, the thread TTL sweeper and the purge sweeper. Each is safe to run in any number of processes.
API-only processes (``--no-workers``) run none of them."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from cogni_server.services.context import ServerContext
from cogni_server.services.purge import PurgeSweeper
from cogni_server.services.scheduler import CronScheduler
from cogni_server.services.thread_ttl import TTLSweeper
from cogni_server.services.webhooks import WebhookDeliverer


class BackgroundJobs:
    def __init__(self, ctx: ServerContext) -> None:
        self.ctx = ctx
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        if not self.ctx.workers.enabled:
            return
        self._tasks = [
            asyncio.create_task(CronScheduler(self.ctx).run_forever(), name="cron-scheduler"),
            asyncio.create_task(WebhookDeliverer(self.ctx).run_forever(), name="webhook-deliverer"),
            asyncio.create_task(TTLSweeper(self.ctx).run_forever(), name="thread-ttl-sweeper"),
            asyncio.create_task(PurgeSweeper(self.ctx).run_forever(), name="purge-sweeper"),
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(BaseException):
                await task
        self._tasks = []


def background_features(ctx: ServerContext) -> dict[str, Any]:
    """What ``/info`` reports about crons, webhooks and thread TTLs in this process."""
    running = ctx.workers.enabled
    settings = ctx.settings
    return {
        "crons": {
            "scheduler": running,
            "poll_seconds": settings.cron_poll_seconds,
            "seconds_field": settings.cron_allow_seconds,
        },
        "webhooks": {
            "deliverer": running,
            "allowed_domains": list(ctx.webhooks.allowed_domains),
            "require_https": ctx.webhooks.require_https,
            "signed": bool(ctx.webhooks.signing_secret),
            "max_attempts": settings.webhook_max_attempts,
            "disabled": ctx.webhooks.disabled,
        },
        "thread_ttl": {
            "sweeper": running,
            "default_ttl_minutes": ctx.thread_ttl.default_minutes,
            "strategy": ctx.thread_ttl.strategy,
            "sweep_interval_seconds": ctx.thread_ttl.sweep_interval_seconds,
        },
    }
