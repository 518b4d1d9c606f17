"""ModelAllowlist: LiteLLM's aliases (`GET /model/info`), cached and refreshed in the background.

The app chooses the model server-side: a request names an alias from this list or gets the default.
LiteLLM being briefly down must not take the app down, so a failed refresh keeps the last good
list (logged and counted). Only the very first fetch is mandatory: `start()` retries it for a
bounded time and then fails with ModelAllowlistUnavailable.
"""

import asyncio
import contextlib
import time
from dataclasses import dataclass
from typing import Any

import httpx
import structlog

from cogni_app import metrics

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class ModelInfo:
    id: str
    display_name: str
    is_free: bool
    is_default: bool


class UnknownModel(Exception):
    """A requested model is not on the allowlist (HTTP 409 carrying the default model id)."""

    def __init__(self, requested: str, default_model_id: str) -> None:
        super().__init__(f"unknown model {requested!r}; the default is {default_model_id!r}")
        self.requested = requested
        self.default_model_id = default_model_id


class ModelAllowlistUnavailable(RuntimeError):
    """No model list yet: the first fetch of /model/info never succeeded within the start deadline."""


def _flag(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes")
    return bool(value)


def _upstream_name(entry: dict[str, Any]) -> str | None:
    """`openai/mock-free` -> `mock-free`: the model name LiteLLM reports for calls to this alias."""
    params = entry.get("litellm_params")
    model = params.get("model") if isinstance(params, dict) else None
    return model.rsplit("/", 1)[-1] if isinstance(model, str) and model else None


@dataclass(frozen=True)
class _Snapshot:
    models: tuple[ModelInfo, ...]
    by_id: dict[str, ModelInfo]
    default: ModelInfo
    free_upstream: frozenset[str]


def parse_model_info(payload: Any) -> _Snapshot:
    """Turn a `/model/info` body into a snapshot; several deployments of one alias collapse into one."""
    data = payload.get("data") if isinstance(payload, dict) else None
    if not isinstance(data, list):
        raise ValueError("/model/info answered without a `data` list")
    by_id: dict[str, ModelInfo] = {}
    free_upstream: set[str] = set()
    paid_upstream: set[str] = set()
    for entry in data:
        if not isinstance(entry, dict) or not isinstance(entry.get("model_name"), str):
            continue
        alias = entry["model_name"]
        info = entry.get("model_info") if isinstance(entry.get("model_info"), dict) else {}
        assert isinstance(info, dict)
        model = ModelInfo(
            id=alias,
            display_name=str(info.get("display_name") or alias),
            is_free=_flag(info.get("is_free")),
            is_default=_flag(info.get("is_default")),
        )
        if alias in by_id:  # another deployment of the same alias: free only if all are free
            prev = by_id[alias]
            model = ModelInfo(
                alias, prev.display_name, prev.is_free and model.is_free, prev.is_default or model.is_default
            )
        by_id[alias] = model
        upstream = _upstream_name(entry)
        if upstream:
            (free_upstream if model.is_free else paid_upstream).add(upstream)
    if not by_id:
        raise ValueError("/model/info listed no models")
    models = tuple(by_id.values())
    default = next((m for m in models if m.is_default), models[0])
    return _Snapshot(models, by_id, default, frozenset(free_upstream - paid_upstream))


class ModelAllowlist:
    """The aliases LiteLLM serves, with display names, free flags and the default."""

    def __init__(
        self,
        litellm_base_url: str,
        api_key: str,
        *,
        refresh_seconds: float = 60.0,
        start_timeout_seconds: float = 30.0,
        request_timeout_seconds: float = 5.0,
    ) -> None:
        self.base_url = litellm_base_url.rstrip("/")
        self.api_key = api_key
        self.refresh_seconds = refresh_seconds
        self.start_timeout_seconds = start_timeout_seconds
        self.request_timeout_seconds = request_timeout_seconds
        self._snapshot: _Snapshot | None = None
        self._client: httpx.AsyncClient | None = None
        self._task: asyncio.Task[None] | None = None

    async def _fetch(self) -> _Snapshot:
        assert self._client is not None
        response = await self._client.get(
            f"{self.base_url}/model/info", headers={"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        )
        response.raise_for_status()
        return parse_model_info(response.json())

    async def refresh(self) -> bool:
        """Fetch the list now. On failure keep the last good list and return False."""
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=self.request_timeout_seconds)
        try:
            snapshot = await self._fetch()
        except (httpx.HTTPError, ValueError) as exc:
            metrics.MODEL_ALLOWLIST_REFRESH_FAILURES.inc()
            log.warning("model allowlist refresh failed; keeping the last good list", error=str(exc))
            return False
        self._snapshot = snapshot
        metrics.MODEL_ALLOWLIST_MODELS.set(len(snapshot.models))
        return True

    async def start(self) -> None:
        """First fetch (retried with backoff up to `start_timeout_seconds`), then background refresh."""
        deadline = time.monotonic() + self.start_timeout_seconds
        delay = 0.2
        while not await self.refresh():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                await self.stop()
                raise ModelAllowlistUnavailable(
                    f"LiteLLM {self.base_url}/model/info gave no model list within {self.start_timeout_seconds}s"
                )
            await asyncio.sleep(min(delay, remaining))
            delay = min(delay * 2, 2.0)
        self._task = asyncio.create_task(self._refresh_forever(), name="model-allowlist-refresh")

    async def _refresh_forever(self) -> None:
        while True:
            await asyncio.sleep(self.refresh_seconds)
            await self.refresh()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    def _current(self) -> _Snapshot:
        if self._snapshot is None:
            raise ModelAllowlistUnavailable("the model allowlist has not been fetched yet (call start())")
        return self._snapshot

    def models(self) -> list[ModelInfo]:
        return list(self._current().models)

    def default_model(self) -> ModelInfo:
        return self._current().default

    def resolve(self, requested: str | None) -> ModelInfo:
        """None -> the default; an alias on the list -> it; anything else -> UnknownModel (HTTP 409)."""
        snapshot = self._current()
        if requested is None:
            return snapshot.default
        model = snapshot.by_id.get(requested)
        if model is None:
            raise UnknownModel(requested, snapshot.default.id)
        return model

    def is_free(self, model_id: str | None) -> bool:
        """True for a free alias, or the upstream model name only free aliases use. Unknown -> paid."""
        if model_id is None or self._snapshot is None:
            return False
        model = self._snapshot.by_id.get(model_id)
        if model is not None:
            return model.is_free
        return model_id in self._snapshot.free_upstream
