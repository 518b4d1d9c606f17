"""The cron scheduler: one loop in every worker process, exactly one run per tick across all of them.

Each poll is one transaction: lock the due crons no other scheduler holds (``FOR UPDATE SKIP
LOCKED``), insert each one's run (queued, like any run no local slot took) and move its
``next_run_date`` to the next tick. A crash before the commit leaves the tick due for the next poll
of any process; after the commit it has fired. Ticks missed while every process was down fire once,
not once per missed tick; a scheduler merely late (less than two polls and a second) still fires
every tick.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta
from typing import Any

from cogni_server import metrics
from cogni_server.errors import DomainError
from cogni_server.services.context import ServerContext
from cogni_server.services.cron_schedule import next_tick
from cogni_server.services.crons import run_request
from cogni_server.services.runs import bills_caller, new_run
from cogni_server.services.thread_ttl_policy import ttl_for_new_thread
from cogni_server.storage import assistants as assistant_repo
from cogni_server.storage import crons as cron_repo
from cogni_server.storage import runs as run_repo
from cogni_server.storage.pool import Conn

log = logging.getLogger("cogni_server.scheduler")
BATCH = 100


class CronScheduler:
    def __init__(self, ctx: ServerContext) -> None:
        self.ctx = ctx

    async def run_forever(self) -> None:
        poll = self.ctx.settings.cron_poll_seconds
        while True:
            claimed = 0
            try:
                claimed = await self.tick()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("cron scheduler poll failed; retrying")
            if claimed < BATCH:
                await asyncio.sleep(poll)

    async def tick(self) -> int:
        """Fire every due cron once; returns how many were due."""
        to_cancel: list[tuple[str, str]] = []
        ended: list[str] = []
        fired = 0
        async with self.ctx.pool.connection() as conn, conn.transaction():
            due = await cron_repo.claim_due(conn, BATCH)
            for cron in due:
                try:
                    async with conn.transaction():  # a savepoint: one bad cron cannot spoil the others
                        created = await self._fire(conn, cron)
                    fired += 1
                    metrics.CRON_TICKS.labels("run_created").inc()
                    strategy = created.run["multitask_strategy"]
                    to_cancel += [(run_id, strategy) for run_id in created.to_cancel]
                    ended += created.cancelled
                except DomainError as exc:  # e.g. multitask_strategy "reject" on a busy thread
                    metrics.CRON_TICKS.labels("skipped").inc()
                    log.warning("cron %s: tick skipped: %s", cron["cron_id"], exc)
                except Exception:
                    metrics.CRON_TICKS.labels("error").inc()
                    log.exception("cron %s: tick failed", cron["cron_id"])
                await cron_repo.advance(conn, cron["cron_id"], self.next_run_date(cron))
        if fired:
            await self.ctx.broker.notify_run_pending()
        for run_id, strategy in to_cancel:
            await self.ctx.broker.publish_control(run_id, strategy)
        for run_id in ended:
            await self.ctx.broker.end(run_id)
        return len(due)

    def next_run_date(self, cron: dict[str, Any]) -> datetime:
        """The tick after the one just fired; ticks that fell due more than the grace ago (every
        process was down) are merged into the run just made, a tick less late still fires on its own."""
        grace = timedelta(seconds=2 * self.ctx.settings.cron_poll_seconds + 1.0)
        after = max(cron["next_run_date"], cron["db_now"] - grace)
        return next_tick(cron["schedule"], cron["timezone"], after)

    async def _fire(self, conn: Conn, cron: dict[str, Any]) -> run_repo.Created:
        """Insert this tick's run as the cron's owner, on the scheduler's transaction, with the cron's LLM key."""
        owner = cron["owner"]
        assistant = self.ctx.system_assistants.get(str(cron["assistant_id"]))
        if assistant is None:
            assistant = await assistant_repo.get(conn, owner, cron["assistant_id"])
        sealed = None if cron.get("llm_key") is None else bytes(cron["llm_key"])  # the cron's key (0007)
        new = new_run(
            owner,
            cron["thread_id"],
            run_request(cron),
            assistant,
            bind_billing=bills_caller(self.ctx),
            llm_key=sealed is not None,
        )
        new.thread_ttl = ttl_for_new_thread(self.ctx, None)
        lease = self.ctx.settings.lease_seconds
        # the run's own copy of the sealed key, in this transaction (deleted when the run ends; the cron keeps its)
        created = await run_repo.create(conn, new, worker_id=None, lease_seconds=lease, secret=sealed)
        log.info("cron %s: run %s queued", cron["cron_id"], new.run_id)
        return created
