"""The billing worker (`cogni-app reconcile-worker`): the reconciler's sweep in a process of its own.

The app bills a call from its stream, then reconciles the run, then sweeps. All three live in the
chat-serving process, so a call that ends while no app process is alive (a crash, a `kill -9`, a
deploy) waited for an app to start again: 4 to 8 s of imports and start-up, more on a loaded machine.
The worker sweeps the spend log from the durable cursor every `COGNI_RECONCILE_WORKER_INTERVAL_SECONDS`
(1 s) whatever the app does, so such a call is billed about settle + interval after its end. It imports
no web framework, graph or executor, and has nothing but billing to crash on.

Calls younger than `COGNI_RECONCILE_WORKER_SETTLE_SECONDS` (1 s) are left to the app's stream charge,
whose receipt carries the chat's request id; past that the worker charges them. Either way one receipt
per call: the ledger's idempotency key. Several workers side by side are safe for the same reason (and
the cursor only moves forward); a second one is for availability, not throughput.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import structlog

from cogni_app.billing import Ledger
from cogni_app.config import BillingSettings
from cogni_app.db import AppDatabase, migrate
from cogni_app.models import ModelAllowlist
from cogni_app.reconcile import Reconciler
from cogni_app.wiring import build_spend_source

log = structlog.get_logger(__name__)
POOL_SIZE = 4  # one sweep at a time: cursor, accounts, receipt lookups, one commit


@asynccontextmanager
async def open_reconciler(settings: BillingSettings, *, run_migrations: bool = True) -> AsyncIterator[Reconciler]:
    """The worker's reconciler over the app database, with the model list (free models are charged 0)."""
    if run_migrations:
        await migrate(settings.database_url)
    db = AppDatabase(settings.database_url, min_size=1, max_size=POOL_SIZE)
    await db.open()
    models = ModelAllowlist(
        settings.litellm_base_url,
        settings.litellm_api_key.get_secret_value(),
        refresh_seconds=settings.cogni_models_refresh_seconds,
    )
    try:
        await models.start()
        ledger = Ledger(db, markup=settings.user_price_markup_factor, is_free_model=models.is_free)
        yield Reconciler(
            ledger,
            build_spend_source(settings),
            settle_seconds=settings.cogni_reconcile_worker_settle_seconds,
            retention_days=settings.cogni_spend_log_retention_days,
        )
    finally:
        await models.stop()
        await db.close()


async def run_worker(settings: BillingSettings, *, run_migrations: bool = True) -> None:
    """Sweep every interval until SIGTERM or SIGINT; a sweep in progress is cut (its commits are atomic and
    idempotent, so the next worker or sweep takes over where it stopped)."""
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    assert task is not None
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, task.cancel)
    interval = settings.cogni_reconcile_worker_interval_seconds
    try:
        async with open_reconciler(settings, run_migrations=run_migrations) as reconciler:
            log.info("reconcile_worker_started", interval_seconds=interval, source=reconciler.source.name)
            await reconciler.run_periodically(interval, catchup_interval_seconds=interval)
    except asyncio.CancelledError:
        log.info("reconcile_worker_stopped")
