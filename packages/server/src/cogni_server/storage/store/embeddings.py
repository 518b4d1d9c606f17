"""Embeddings for the store's semantic search, through the LiteLLM proxy (OpenAI ``/embeddings``).

The library calls ``LiteLLMEmbedder`` with a batch of texts; each request carries the
``x-litellm-spend-logs-metadata`` header (the tenant and, inside a run, the run's ids), so an
embedding's cost reaches the spend log like any other model call. Who is embedding is known only
where the store is used, so ``TenantStore`` sets ``EMBEDDING_ATTRIBUTION`` around each operation.
"""

from __future__ import annotations

import contextvars
import json
from collections.abc import Mapping
from typing import Any

import httpx

from cogni_server.errors import UpstreamFailed

SPEND_LOGS_METADATA_HEADER = "x-litellm-spend-logs-metadata"
BATCH_SIZE = 256

EMBEDDING_ATTRIBUTION: contextvars.ContextVar[Mapping[str, str] | None] = contextvars.ContextVar(
    "cogni_store_embedding_attribution", default=None
)


class EmbeddingError(UpstreamFailed):
    """The embedding service failed or answered something unusable (the message says which)."""


class LiteLLMEmbedder:
    """``async (texts) -> vectors`` against ``{base_url}/embeddings`` (an OpenAI base URL)."""

    def __init__(self, *, base_url: str, api_key: str | None, model: str, dims: int, timeout: float) -> None:
        self.url = base_url.rstrip("/") + "/embeddings"
        self.model = model
        self.dims = dims
        headers = {"authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.AsyncClient(timeout=timeout, headers=headers)

    async def __call__(self, texts: list[str]) -> list[list[float]]:
        vectors: list[list[float]] = []
        for start in range(0, len(texts), BATCH_SIZE):
            vectors.extend(await self._batch(texts[start : start + BATCH_SIZE]))
        return vectors

    async def _batch(self, texts: list[str]) -> list[list[float]]:
        body = {"model": self.model, "input": texts, "dimensions": self.dims, "encoding_format": "float"}
        headers = {}
        attribution = EMBEDDING_ATTRIBUTION.get()
        if attribution:
            headers[SPEND_LOGS_METADATA_HEADER] = json.dumps(dict(attribution), separators=(",", ":"))
        try:
            response = await self._client.post(self.url, json=body, headers=headers)
        except httpx.HTTPError as exc:
            raise EmbeddingError(f"embedding request to {self.url} failed: {type(exc).__name__}: {exc}") from exc
        if response.status_code >= 400:
            raise EmbeddingError(
                f"embedding model {self.model!r} answered HTTP {response.status_code}: {response.text[:500]}"
            )
        return self._vectors(response.json(), len(texts))

    def _vectors(self, payload: Any, expected: int) -> list[list[float]]:
        data = payload.get("data") if isinstance(payload, dict) else None
        if not isinstance(data, list) or len(data) != expected:
            raise EmbeddingError(f"embedding model {self.model!r} returned {len(data or [])} vectors for {expected}")
        ordered = sorted(data, key=lambda d: d.get("index", 0))
        vectors = [d.get("embedding") for d in ordered]
        for vector in vectors:
            if not isinstance(vector, list) or len(vector) != self.dims:
                size = len(vector) if isinstance(vector, list) else type(vector).__name__
                raise EmbeddingError(
                    f"embedding model {self.model!r} returned vectors of {size} dimensions;"
                    f" store.index.dims in langgraph.json says {self.dims}"
                )
        return vectors

    async def aclose(self) -> None:
        await self._client.aclose()
