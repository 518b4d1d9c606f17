"""A user's data deletion as one tracked job per account (docs/compliance.md, `# The app`).

Asking starts the job and revokes the account's API keys at once (nothing new starts); the job then
runs in the background, step by step: the Agent Server purges the account's tenant (polled until done),
the app deletes and blanks its own rows, the spend log loses the rows' content. Each step is idempotent
and recorded when done, so a job interrupted (an app crash) is resumed by the next call about it or by
the app's next start, and repeats only what was not recorded. The job's row is the deletion record.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass

import structlog

from cogni_app.billing import UnknownAccount
from cogni_app.deletion import (
    STATUS_TOKEN_PREFIX,
    DeletionJobs,
    DeletionRecord,
    Requester,
    ServerPurgeClient,
    SpendLogScrubber,
)

log = structlog.get_logger(__name__)


class DeletionUnavailable(Exception):
    """This app cannot delete everything it would have to (a part is not configured)."""


class UnknownDeletion(Exception):
    """No deletion job for this account, or no job for this status token."""


@dataclass(frozen=True)
class DeletionPolicy:
    retry_seconds: float = 5.0
    """Pause between passes of a job that is not done (server purge still stopping runs, a part unreachable)."""
    server_polls_per_pass: int = 3
    """Purge calls per pass while the server answers `in_progress` (each waits a while for runs to stop)."""


@dataclass(frozen=True)
class DeletionStarted:
    record: DeletionRecord
    status_token: str | None
    """Shown once, when the job is new: reads its status after the account's API keys are gone."""


SKIP_NO_SERVER = "this app runs no graph on an Agent Server"
SKIP_NO_SINK = "no COGNI_SPEND_SINK_DATABASE_URL: the spend log is LiteLLM's own; delete the account's rows there"


class DeletionService:
    """Starts, resumes and reports deletion jobs; one background task per account in this process."""

    def __init__(
        self,
        *,
        jobs: DeletionJobs,
        server: ServerPurgeClient | None,
        spend_log: SpendLogScrubber | None,
        unavailable: str | None = None,
        policy: DeletionPolicy | None = None,
    ) -> None:
        self._jobs = jobs
        self._server = server
        self._spend_log = spend_log
        self._unavailable = unavailable
        self._policy = policy or DeletionPolicy()
        self._tasks: dict[str, asyncio.Task[None]] = {}

    async def request(self, account_id: str, *, requested_by: Requester) -> DeletionStarted:
        """Start (or, when done, restart) the account's job; UnknownAccount, DeletionUnavailable."""
        if self._unavailable:
            raise DeletionUnavailable(self._unavailable)
        try:
            record, token = await self._jobs.open_job(account_id, requested_by)
        except LookupError as exc:
            raise UnknownAccount(f"no billing account {account_id!r}") from exc
        log.info("account data deletion requested", billing_account_id=account_id, requested_by=requested_by)
        self._ensure_running(account_id)
        return DeletionStarted(record=record, status_token=token)

    async def status(self, account_id: str) -> DeletionRecord:
        """The account's job (resumed here if it is unfinished and nobody runs it); UnknownDeletion."""
        record = await self._jobs.get(account_id)
        if record is None:
            raise UnknownDeletion(f"no data deletion was requested for account {account_id!r}")
        if record.status != "done":
            self._ensure_running(account_id)
        return record

    async def status_by_token(self, token: str) -> DeletionRecord:
        record = await self._jobs.by_status_token(token) if token.startswith(STATUS_TOKEN_PREFIX) else None
        if record is None:
            raise UnknownDeletion("unknown deletion status token")
        return await self.status(record.billing_account_id)

    async def resume_all(self) -> int:
        """At start-up: every unfinished job gets a runner (in whichever process takes its lock)."""
        accounts = await self._jobs.open_accounts()
        for account in accounts:
            self._ensure_running(account)
        if accounts:
            log.info("resuming unfinished data deletions", jobs=len(accounts))
        return len(accounts)

    async def wait(self, account_id: str) -> None:
        """Until this process's runner of the account's job ends (tests, the CLI)."""
        task = self._tasks.get(account_id)
        if task is not None:
            await asyncio.shield(task)

    async def aclose(self) -> None:
        """Stop the runners (what they did is recorded; the next start resumes the rest)."""
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._server is not None:
            await self._server.aclose()

    def _ensure_running(self, account_id: str) -> None:
        task = self._tasks.get(account_id)
        if task is None or task.done():
            self._tasks[account_id] = asyncio.create_task(self._run(account_id), name=f"deletion-{account_id}")

    async def _run(self, account_id: str) -> None:
        """Passes until the job is done; a failing step is recorded as the job's last error and retried."""
        while True:
            try:
                if await self._pass(account_id):
                    return
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a part unreachable: record, wait, try again
                message = f"{type(exc).__name__}: {exc}"
                log.warning("account data deletion pass failed; retrying", billing_account_id=account_id, error=message)
                with contextlib.suppress(Exception):
                    await self._jobs.record_error(account_id, message)
            await asyncio.sleep(self._policy.retry_seconds)

    async def _pass(self, account_id: str) -> bool:
        """One pass over the steps not yet done; True when the job is done (here or by another process)."""
        async with self._jobs.worker_lock(account_id) as mine:
            record = await self._jobs.get(account_id)
            if record is None or record.status == "done":
                return True
            if not mine:
                return False  # another process works on it; look again later
            if not record.step_done("server") and not await self._server_step(account_id):
                await self._jobs.record_error(account_id, "the Agent Server's purge is still stopping runs")
                return False
            if not record.step_done("app"):
                await self._jobs.delete_app_data(account_id)
            if not record.step_done("spend_log"):
                await self._spend_log_step(account_id)
            await self._jobs.finish(account_id)
            log.info("account data deletion done", billing_account_id=account_id)
            return True

    async def _server_step(self, account_id: str) -> bool:
        if self._server is None:
            await self._jobs.record_step(account_id, "server", status="skipped", counts={}, reason=SKIP_NO_SERVER)
            return True
        for _ in range(max(self._policy.server_polls_per_pass, 1)):
            purge = await self._server.purge(account_id)  # ServerPurgeFailed: the pass fails, and is retried
            if purge.done:
                await self._jobs.record_step(account_id, "server", status="done", counts=purge.counts, replace=True)
                return True
            await self._jobs.set_step_counts(account_id, "server", purge.counts)
        return False

    async def _spend_log_step(self, account_id: str) -> None:
        if self._spend_log is None:
            await self._jobs.record_step(account_id, "spend_log", status="skipped", counts={}, reason=SKIP_NO_SINK)
            return
        counts = await self._spend_log.scrub(account_id)
        await self._jobs.record_step(account_id, "spend_log", status="done", counts=counts, replace=True)
