"""Webhook delivery from the Postgres outbox: a loop in every worker process.

Each due row is claimed under a lease, its destination re-checked (the host may resolve elsewhere
than when the run was created), and POSTed once with httpx: the run as JSON, the static headers of
langgraph.json, and the Standard Webhooks headers ``webhook-id`` (the row's delivery id, the same on
every retry: receivers de-duplicate on it), ``webhook-timestamp`` and, when a secret is configured,
``webhook-signature: v1,<base64 HMAC-SHA256 of "<id>.<timestamp>.<body>">``.

2xx: delivered. 408, 425, 429, 5xx and transport errors: retried with exponential backoff until
``COGNI_WEBHOOK_MAX_ATTEMPTS``. Any other status: failed at once. A destination the policy refuses:
``refused``. The outcome is recorded on the row, on the run (``metadata.webhook_delivery``) and in
``cogni_webhook_deliveries_total``. Delivery is at least once: a process killed mid-POST leaves its
lease to lapse and the row is sent again, with the same ``webhook-id``.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import importlib.metadata
import logging
import time
from datetime import UTC, datetime
from typing import Any

import httpx

from cogni_server import metrics
from cogni_server.serde import dumps
from cogni_server.services.context import ServerContext
from cogni_server.services.webhook_policy import refusal
from cogni_server.storage import webhooks as outbox

log = logging.getLogger("cogni_server.webhooks")
RETRYABLE = frozenset({408, 425, 429})
MAX_BACKOFF = 600.0
PRUNE_INTERVAL_SECONDS = 600.0  # how often a process looks for finished outbox rows to drop


def _user_agent() -> str:
    try:
        return f"cogni-agent-server/{importlib.metadata.version('cogni-server')}"
    except importlib.metadata.PackageNotFoundError:
        return "cogni-agent-server"


def signature(secret: str, delivery_id: str, timestamp: int, body: bytes) -> str:
    """Standard Webhooks ``v1`` signature; a ``whsec_`` secret is base64 (as that spec's libraries
    expect), any other secret is used as its UTF-8 bytes."""
    key = base64.b64decode(secret[6:]) if secret.startswith("whsec_") else secret.encode()
    signed = f"{delivery_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


def backoff(base: float, attempts: int) -> float:
    return float(min(base * (2 ** max(attempts - 1, 0)), MAX_BACKOFF))


class WebhookDeliverer:
    def __init__(self, ctx: ServerContext) -> None:
        self.ctx = ctx
        self.owner = ctx.workers.worker_id
        self.concurrency = 8
        self._inflight: dict[str, asyncio.Task[None]] = {}
        self._client: httpx.AsyncClient | None = None
        self._next_prune = 0.0  # monotonic time of the next retention pass

    @property
    def lease_seconds(self) -> float:
        return self.ctx.settings.webhook_timeout_seconds + 30.0

    async def run_forever(self) -> None:
        self._client = httpx.AsyncClient(
            timeout=self.ctx.settings.webhook_timeout_seconds, follow_redirects=False, trust_env=False
        )
        try:
            while True:
                free = self.concurrency - len(self._inflight)
                claimed: list[dict[str, Any]] = []
                if free > 0:
                    try:
                        async with self.ctx.pool.connection() as conn:
                            claimed = await outbox.claim(conn, self.owner, free, self.lease_seconds)
                    except asyncio.CancelledError:
                        raise
                    except Exception:
                        log.exception("claiming webhook deliveries failed; retrying")
                for row in claimed:
                    key = str(row["delivery_id"])
                    task = asyncio.create_task(self._deliver(row), name=f"webhook-{key}")
                    self._inflight[key] = task
                    task.add_done_callback(self._forget)
                await self._prune_if_due()
                if not claimed or len(claimed) < free:
                    await asyncio.sleep(self.ctx.settings.webhook_poll_seconds)
        finally:
            await self._shutdown()

    async def _prune_if_due(self) -> None:
        """Drop finished rows past ``COGNI_WEBHOOK_RETENTION_HOURS`` (every process may; deletes are idempotent)."""
        now = time.monotonic()
        if now < self._next_prune:
            return
        self._next_prune = now + PRUNE_INTERVAL_SECONDS
        keep = self.ctx.settings.webhook_retention_hours * 3600.0
        try:
            async with self.ctx.pool.connection() as conn:
                pruned = await outbox.prune_finished(conn, keep)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("pruning the webhook outbox failed; retrying next interval")
            return
        if pruned:
            log.info("pruned %d finished webhook deliveries older than %.1f h", pruned, keep / 3600.0)

    def _forget(self, task: asyncio.Task[None]) -> None:
        self._inflight.pop(task.get_name().removeprefix("webhook-"), None)

    async def _shutdown(self) -> None:
        pending = list(self._inflight.values())
        for task in pending:
            task.cancel()
        for task in pending:
            with contextlib.suppress(BaseException):
                await task
        if self._client is not None:
            await self._client.aclose()

    async def _deliver(self, row: dict[str, Any]) -> None:
        delivery_id = row["delivery_id"]
        try:
            await self._attempt(row)
        except asyncio.CancelledError:  # shutting down before the POST finished: hand the row back
            with contextlib.suppress(Exception):
                async with self.ctx.pool.connection() as conn:
                    await outbox.release(conn, [delivery_id], self.owner)
            raise
        except Exception:
            log.exception("webhook %s: delivery crashed; the lease will lapse and it is retried", delivery_id)

    async def _attempt(self, row: dict[str, Any]) -> None:
        settings = self.ctx.settings
        delivery_id, url, attempts = row["delivery_id"], row["url"], int(row["attempts"])
        if self.ctx.webhooks.disabled:  # http.disable_webhooks: the run ran, its webhook is not sent
            await self._finish(row, "refused", "webhooks are disabled (langgraph.json http.disable_webhooks)", None)
            return
        reason = await refusal(self.ctx.webhooks, url)
        if reason is not None:
            metrics.WEBHOOKS_REFUSED.labels("send").inc()
            await self._finish(row, "refused", f"destination refused: {reason}", None)
            return
        body = dumps({**row["payload"], "webhook_sent_at": _iso_now()})
        timestamp = int(time.time())
        headers = {
            **self.ctx.webhooks.headers,
            "Content-Type": "application/json",
            "User-Agent": _user_agent(),
            "webhook-id": str(delivery_id),
            "webhook-timestamp": str(timestamp),
        }
        if self.ctx.webhooks.signing_secret:
            headers["webhook-signature"] = signature(
                self.ctx.webhooks.signing_secret, str(delivery_id), timestamp, body
            )
        assert self._client is not None
        code: int | None = None
        try:
            response = await self._client.post(url, content=body, headers=headers)
            code = response.status_code
            error = f"HTTP {code}"
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"
        if code is not None and 200 <= code < 300:
            await self._finish(row, "delivered", None, code)
            return
        retryable = code is None or code >= 500 or code in RETRYABLE
        if retryable and attempts < settings.webhook_max_attempts:
            delay = backoff(settings.webhook_backoff_seconds, attempts)
            metrics.WEBHOOK_DELIVERIES.labels("retry").inc()
            log.warning("webhook %s to %s: %s; retry %d in %.1fs", delivery_id, url, error, attempts + 1, delay)
            async with self.ctx.pool.connection() as conn:
                await outbox.retry_later(conn, delivery_id, self.owner, delay=delay, error=error, code=code)
            return
        if retryable:
            error = f"{error} (gave up after {attempts} attempts)"
        await self._finish(row, "failed", error, code)

    async def _finish(self, row: dict[str, Any], status: str, error: str | None, code: int | None) -> None:
        delivery_id = row["delivery_id"]
        metrics.WEBHOOK_DELIVERIES.labels(status).inc()
        if error is not None:
            log.warning("webhook %s to %s: %s", delivery_id, row["url"], error)
        async with self.ctx.pool.connection() as conn:
            if status == "delivered":
                owned = await outbox.delivered(conn, delivery_id, self.owner, code or 200)
            else:
                owned = await outbox.give_up(conn, delivery_id, self.owner, status=status, error=error or "", code=code)
            if owned:
                outcome = {
                    "delivery_id": str(delivery_id),
                    "status": status,
                    "attempts": int(row["attempts"]),
                    "response_status": code,
                    "error": error,
                }
                await outbox.record_on_run(conn, row["run_id"], outcome)


def _iso_now() -> str:
    return datetime.now(UTC).isoformat()
