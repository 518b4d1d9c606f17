"""The Agent Server's part of a user's data deletion: its operator route purges the account's tenant.

The app's service JWTs name the billing account as subject and the server takes the subject as the
tenant (cogni_app.service_auth), so the tenant to purge is the billing account id. The route answers
`{"tenant", "status": "done"|"in_progress", "counts": {table: rows}}`, is idempotent and resumable, and
its counts are totals over every pass (docs/compliance.md, `# The Agent Server`).
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx


class ServerPurgeFailed(Exception):
    """The server could not be asked, or answered something other than a purge record."""


@dataclass(frozen=True)
class ServerPurge:
    status: str
    counts: dict[str, int]

    @property
    def done(self) -> bool:
        return self.status == "done"


class ServerPurgeClient:
    """`POST {server}/admin/tenants/{tenant}/purge` with `Authorization: Bearer <operator token>`."""

    def __init__(
        self,
        url: str,
        operator_token: str,
        *,
        timeout_seconds: float = 120.0,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self._token = operator_token
        self._http = httpx.AsyncClient(timeout=timeout_seconds, verify=ssl_context or True)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def purge(self, tenant: str) -> ServerPurge:
        """One purge pass on the server (it waits a bounded time for the tenant's runs to stop)."""
        target = f"{self.url}/admin/tenants/{quote(tenant, safe='')}/purge"
        try:
            response = await self._http.post(target, headers={"Authorization": f"Bearer {self._token}"})
        except httpx.HTTPError as exc:
            raise ServerPurgeFailed(f"the Agent Server at {self.url} is unreachable: {type(exc).__name__}") from exc
        if response.status_code != 200:
            raise ServerPurgeFailed(
                f"the Agent Server answered HTTP {response.status_code} to the tenant purge: {response.text[:300]}"
            )
        body: Any = response.json()
        if not isinstance(body, dict) or body.get("status") not in ("done", "in_progress"):
            raise ServerPurgeFailed(f"the Agent Server answered the tenant purge oddly: {str(body)[:300]}")
        raw = body.get("counts")
        counts: dict[str, Any] = raw if isinstance(raw, dict) else {}
        return ServerPurge(status=str(body["status"]), counts={str(k): int(v) for k, v in counts.items()})
