"""The ``store`` block of langgraph.json (the keys of ``langgraph_cli.schemas.StoreConfig``).

```json
"store": {
  "index": {"embed": "openai:text-embedding-3-small", "dims": 1536, "fields": ["$"]},
  "ttl":   {"refresh_on_read": true, "default_ttl": null, "sweep_interval_minutes": 5}
}
```

Every key is checked here, so a typo or a wrong type is a start-up error naming it, never a setting
silently ignored. ``index.embed`` is either a Python function (``"./file.py:func"`` or
``"package.module:func"``, loaded like a graph) or ``"provider:model"``, which the server sends to
the LiteLLM proxy as the model ``model`` (see ``storage/store/embeddings.py``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from cogni_server.graphs.config import GraphLoadError, GraphSpec, ProjectConfig
from cogni_server.graphs.loader import import_spec_module

DEFAULT_SWEEP_INTERVAL_MINUTES = 5.0
MIN_SWEEP_INTERVAL_MINUTES = 0.01  # 0.6 s: short enough for tests, long enough not to spin
MAX_TTL_MINUTES = 2**31 - 1  # the library keeps ttl_minutes in an INT column
DISTANCE_TYPES = ("cosine", "l2", "inner_product")
ANN_KINDS = ("hnsw", "ivfflat")
VECTOR_TYPES = ("vector", "halfvec")
_ANN_KEYS = {"kind": str, "vector_type": str, "m": int, "ef_construction": int, "nlist": int}


@dataclass(frozen=True)
class StoreIndexConfig:
    """``store.index``: semantic search over the listed JSON paths of each item's value."""

    dims: int
    embed: str
    fields: tuple[str, ...] = ("$",)
    distance_type: str = "cosine"
    ann_index_config: dict[str, Any] = field(default_factory=dict)

    @property
    def embed_is_python(self) -> bool:
        """A Python function (a path or a dotted module), not a ``provider:model`` name."""
        location = self.embed.rpartition(":")[0]
        return _is_path(location) or "." in location

    @property
    def litellm_model(self) -> str:
        """The model name sent to LiteLLM for ``provider:model`` (everything after the first colon)."""
        return self.embed.split(":", 1)[1] if ":" in self.embed else self.embed


@dataclass(frozen=True)
class StoreTTLConfig:
    """``store.ttl``: item expiry in minutes and how often expired items are deleted."""

    refresh_on_read: bool = True
    default_ttl: int | None = None
    sweep_interval_minutes: float = DEFAULT_SWEEP_INTERVAL_MINUTES


@dataclass(frozen=True)
class StoreConfig:
    index: StoreIndexConfig | None = None
    ttl: StoreTTLConfig = field(default_factory=StoreTTLConfig)

    def library_ttl(self) -> dict[str, Any]:
        """The library's ``TTLConfig``; expired-but-unswept items are always hidden (``omit_expired``)."""
        return {
            "refresh_on_read": self.ttl.refresh_on_read,
            "default_ttl": self.ttl.default_ttl,
            "sweep_interval_minutes": self.ttl.sweep_interval_minutes,
            "omit_expired": True,
        }

    def library_index(self, embed: Any) -> dict[str, Any] | None:
        """The library's ``PostgresIndexConfig`` with ``embed`` (a callable or Embeddings object)."""
        if self.index is None:
            return None
        config: dict[str, Any] = {
            "dims": self.index.dims,
            "embed": embed,
            "fields": list(self.index.fields),
            "distance_type": self.index.distance_type,
        }
        if self.index.ann_index_config:
            config["ann_index_config"] = dict(self.index.ann_index_config)
        return config


def read_store_config(project: ProjectConfig) -> StoreConfig:
    """Parse ``store`` from langgraph.json (absent -> no semantic search, default TTL rules)."""
    raw = project.raw.get("store")
    if raw is None:
        return StoreConfig()
    where = f"{project.path}: store"
    block = _object(raw, where, {"index", "ttl"})
    index = None if block.get("index") is None else _index(block["index"], f"{where}.index")
    ttl = StoreTTLConfig() if block.get("ttl") is None else _ttl(block["ttl"], f"{where}.ttl")
    return StoreConfig(index=index, ttl=ttl)


def load_embed_function(project: ProjectConfig, index: StoreIndexConfig) -> Any:
    """Import the Python embedding function ``index.embed`` names (sync or async ``texts -> vectors``,
    or a LangChain ``Embeddings`` object)."""
    location, _, attr = index.embed.rpartition(":")
    where = f"{project.path}: store.index.embed {index.embed!r}"
    if not location or not attr.isidentifier():
        raise GraphLoadError(f"{where}: expected './file.py:function' or 'package.module:function'")
    if _is_path(location):
        file = (project.path.parent / location).resolve()
        if not file.is_file():
            raise GraphLoadError(f"{where}: file not found: {file}")
        spec = GraphSpec("store.index.embed", index.embed, attr, file=file)
    else:
        spec = GraphSpec("store.index.embed", index.embed, attr, module=location)
    module = import_spec_module(spec)
    embed = getattr(module, attr, None)
    if embed is None:
        raise GraphLoadError(f"{where}: module has no attribute {attr!r}")
    if not callable(embed) and not hasattr(embed, "aembed_documents"):
        raise GraphLoadError(f"{where}: expected a function or an Embeddings object, got {type(embed).__name__}")
    return embed


def _is_path(location: str) -> bool:
    return location.endswith(".py") or location.startswith((".", "/")) or "/" in location


def _object(raw: Any, where: str, allowed: set[str]) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise GraphLoadError(f"{where} must be an object, got {type(raw).__name__}")
    unknown = sorted(set(raw) - allowed)
    if unknown:
        raise GraphLoadError(f"{where}: unknown key(s) {', '.join(unknown)} (allowed: {', '.join(sorted(allowed))})")
    return raw


def _positive_int(value: Any, where: str, *, maximum: int = MAX_TTL_MINUTES) -> int:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= maximum:
        raise GraphLoadError(f"{where} must be a whole number from 1 to {maximum}, got {value!r}")
    return value


def _index(raw: Any, where: str) -> StoreIndexConfig:
    block = _object(raw, where, {"dims", "embed", "fields", "distance_type", "ann_index_config"})
    if "dims" not in block or "embed" not in block:
        raise GraphLoadError(f"{where} needs both 'dims' and 'embed'")
    dims = _positive_int(block["dims"], f"{where}.dims", maximum=16000)
    embed = block["embed"]
    if not isinstance(embed, str) or not embed.strip():
        raise GraphLoadError(f"{where}.embed must be 'provider:model' or './file.py:function', got {embed!r}")
    fields = block.get("fields")
    if fields is None:
        fields = ["$"]
    if not isinstance(fields, list) or not fields or not all(isinstance(f, str) and f for f in fields):
        raise GraphLoadError(f"{where}.fields must be a non-empty list of JSON paths (strings), got {fields!r}")
    distance = block.get("distance_type", "cosine")
    if distance not in DISTANCE_TYPES:
        raise GraphLoadError(f"{where}.distance_type must be one of {', '.join(DISTANCE_TYPES)}, got {distance!r}")
    ann = _ann(block.get("ann_index_config"), f"{where}.ann_index_config")
    return StoreIndexConfig(dims, embed.strip(), tuple(fields), distance, ann)


def _ann(raw: Any, where: str) -> dict[str, Any]:
    if raw is None:
        return {}
    block = _object(raw, where, set(_ANN_KEYS))
    for key, kind in _ANN_KEYS.items():
        value = block.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, kind)):
            raise GraphLoadError(f"{where}.{key} must be a {kind.__name__}, got {value!r}")
    kind = block.get("kind", "hnsw")
    if kind not in ANN_KINDS:
        raise GraphLoadError(f"{where}.kind must be one of {', '.join(ANN_KINDS)}, got {kind!r}")
    if block.get("vector_type", "vector") not in VECTOR_TYPES:
        raise GraphLoadError(f"{where}.vector_type must be one of {', '.join(VECTOR_TYPES)}")
    for key in ("m", "ef_construction", "nlist"):
        if key not in block:
            continue
        if block[key] < 1:
            raise GraphLoadError(f"{where}.{key} must be at least 1, got {block[key]!r}")
        if (key == "nlist") != (kind == "ivfflat"):
            raise GraphLoadError(f"{where}.{key} does not apply to kind {kind!r}")
    return dict(block)


def _ttl(raw: Any, where: str) -> StoreTTLConfig:
    block = _object(raw, where, {"refresh_on_read", "default_ttl", "sweep_interval_minutes"})
    refresh = block.get("refresh_on_read", True)
    if not isinstance(refresh, bool):
        raise GraphLoadError(f"{where}.refresh_on_read must be true or false, got {refresh!r}")
    default = block.get("default_ttl")
    default_ttl = None if default is None else _positive_int(default, f"{where}.default_ttl")
    interval = block.get("sweep_interval_minutes")
    if interval is None:
        interval = DEFAULT_SWEEP_INTERVAL_MINUTES
    if (
        isinstance(interval, bool)
        or not isinstance(interval, int | float)
        or not math.isfinite(interval)
        or interval < MIN_SWEEP_INTERVAL_MINUTES
    ):
        raise GraphLoadError(
            f"{where}.sweep_interval_minutes must be a number of minutes >= {MIN_SWEEP_INTERVAL_MINUTES}, "
            f"got {interval!r}"
        )
    return StoreTTLConfig(refresh, default_ttl, float(interval))
