"""The ``http`` block of langgraph.json (the keys of ``langgraph_cli.schemas.HttpConfig``).

```json
"http": {
  "app": "./src/agent/webapp.py:app",
  "cors": {"allow_origins": ["https://app.example.com"], "allow_credentials": true},
  "configurable_headers": {"includes": ["x-user-id", "my-prefix-*"], "excludes": ["authorization"]},
  "disable_store": true,
  "enable_custom_route_auth": true
}
```

Parsed and checked here (types and key names); the HTTP layer acts on it (``api.custom_http``). A key
this server does not implement is a start-up error naming it (``mount_prefix``,
``middleware_order: "auth_first"``); see ``docs/langgraph-json.md``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cogni_server.graphs.errors import GraphLoadError

DISABLE_FLAGS = (
    "disable_assistants",
    "disable_threads",
    "disable_runs",
    "disable_store",
    "disable_mcp",
    "disable_a2a",
    "disable_meta",
    "disable_ui",
    "disable_webhooks",
)
CORS_LIST_KEYS = ("allow_origins", "allow_methods", "allow_headers", "expose_headers")
CORS_KEYS = (*CORS_LIST_KEYS, "allow_credentials", "allow_origin_regex", "max_age")
HEADER_KEYS = ("includes", "excludes", "include", "exclude")  # the docs spell it both ways
MIDDLEWARE_ORDERS = ("middleware_first", "auth_first")
HTTP_KEYS = (
    "app",
    *DISABLE_FLAGS,
    "cors",
    "configurable_headers",
    "logging_headers",
    "middleware_order",
    "enable_custom_route_auth",
    "mount_prefix",
)
_REFUSED = {
    "mount_prefix": "serving the API under a URL prefix is not supported; put a reverse proxy that strips the"
    " prefix in front of the server",
}


NEVER_COPIED = frozenset({"x-cogni-llm-key"})
"""Secrets no `configurable_headers` pattern may copy into a run's stored config (services/run_keys.py)."""


@dataclass(frozen=True)
class HeaderFilter:
    """Which request headers are copied into a run's ``config["configurable"]`` (``*`` wildcards).

    Excludes win over includes; no includes means no header is copied (the server's default).
    """

    includes: tuple[str, ...] = ()
    excludes: tuple[str, ...] = ()
    _include_re: tuple[re.Pattern[str], ...] = field(default=(), repr=False, compare=False)
    _exclude_re: tuple[re.Pattern[str], ...] = field(default=(), repr=False, compare=False)

    @classmethod
    def of(cls, includes: list[str], excludes: list[str]) -> HeaderFilter:
        def compiled(patterns: list[str]) -> tuple[re.Pattern[str], ...]:
            return tuple(re.compile("^" + ".*".join(map(re.escape, p.lower().split("*"))) + "$") for p in patterns)

        return cls(tuple(includes), tuple(excludes), compiled(includes), compiled(excludes))

    @property
    def active(self) -> bool:
        return bool(self.includes)

    def selects(self, name: str) -> bool:
        lowered = name.lower()
        if lowered in NEVER_COPIED or any(p.match(lowered) for p in self._exclude_re):
            return False
        return any(p.match(lowered) for p in self._include_re)

    def pick(self, headers: Mapping[str, str]) -> dict[str, str]:
        """The selected headers, names lower-cased (as the reference puts them in configurable)."""
        return {k.lower(): v for k, v in headers.items() if self.selects(k)}


@dataclass(frozen=True)
class HttpConfig:
    """The parsed ``http`` block; every field has the reference's default."""

    app: str | None = None
    disable_assistants: bool = False
    disable_threads: bool = False
    disable_runs: bool = False
    disable_store: bool = False
    disable_mcp: bool = False
    disable_a2a: bool = False
    disable_meta: bool = False
    disable_ui: bool = False
    disable_webhooks: bool = False
    cors: Mapping[str, Any] | None = None  # Starlette CORSMiddleware keyword arguments
    configurable_headers: HeaderFilter = field(default_factory=HeaderFilter)
    logging_headers: HeaderFilter = field(default_factory=HeaderFilter)
    enable_custom_route_auth: bool = False
    base_dir: Path | None = None  # where a relative ``app`` path is resolved


def _where(key: str) -> str:
    return f"langgraph.json: http.{key}"


def _bool(block: Mapping[str, Any], key: str) -> bool:
    value = block.get(key, False)
    if not isinstance(value, bool):
        raise GraphLoadError(f"{_where(key)} must be true or false, got {value!r}")
    return value


def _strings(value: Any, where: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise GraphLoadError(f"{where} must be a list of strings, got {value!r}")
    return list(value)


def _cors(raw: Any) -> dict[str, Any] | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise GraphLoadError(f"{_where('cors')} must be an object")
    if unknown := set(raw) - set(CORS_KEYS):
        raise GraphLoadError(f"{_where('cors')}: unknown key(s) {sorted(unknown)}; known: {list(CORS_KEYS)}")
    out: dict[str, Any] = {}
    for key in CORS_LIST_KEYS:
        if key in raw:
            out[key] = _strings(raw[key], f"{_where('cors')}.{key}")
    if "allow_credentials" in raw:
        if not isinstance(raw["allow_credentials"], bool):
            raise GraphLoadError(f"{_where('cors')}.allow_credentials must be true or false")
        out["allow_credentials"] = raw["allow_credentials"]
    if "allow_origin_regex" in raw:
        regex = raw["allow_origin_regex"]
        try:
            re.compile(regex)
        except (TypeError, re.error) as exc:
            raise GraphLoadError(f"{_where('cors')}.allow_origin_regex is not a regular expression: {exc}") from None
        out["allow_origin_regex"] = regex
    if "max_age" in raw:
        age = raw["max_age"]
        if isinstance(age, bool) or not isinstance(age, int) or age < 0:
            raise GraphLoadError(f"{_where('cors')}.max_age must be a number of seconds, got {age!r}")
        out["max_age"] = age
    return out


def _headers(raw: Any, key: str) -> HeaderFilter:
    if raw is None:
        return HeaderFilter()
    if not isinstance(raw, dict):
        raise GraphLoadError(f"{_where(key)} must be an object with 'includes' and/or 'excludes'")
    if unknown := set(raw) - set(HEADER_KEYS):
        raise GraphLoadError(f"{_where(key)}: unknown key(s) {sorted(unknown)}; known: ['includes', 'excludes']")
    includes = [*_strings(raw.get("includes") or [], f"{_where(key)}.includes")]
    includes += _strings(raw.get("include") or [], f"{_where(key)}.include")
    excludes = [*_strings(raw.get("excludes") or [], f"{_where(key)}.excludes")]
    excludes += _strings(raw.get("exclude") or [], f"{_where(key)}.exclude")
    return HeaderFilter.of(includes, excludes)


def parse_http(raw: Any, base_dir: Path) -> HttpConfig:
    """The ``http`` block; anything unknown, mistyped or not implemented is a GraphLoadError naming it."""
    if raw is None:
        return HttpConfig(base_dir=base_dir)
    if not isinstance(raw, dict):
        raise GraphLoadError("langgraph.json: 'http' must be an object")
    if unknown := set(raw) - set(HTTP_KEYS):
        raise GraphLoadError(f"langgraph.json: unknown key(s) in 'http': {sorted(unknown)}")
    for key, why in _REFUSED.items():
        if key in raw:
            raise GraphLoadError(f"{_where(key)}: {why}")
    order = raw.get("middleware_order", "middleware_first")
    if order not in MIDDLEWARE_ORDERS:
        raise GraphLoadError(f"{_where('middleware_order')} must be one of {list(MIDDLEWARE_ORDERS)}, got {order!r}")
    if order == "auth_first":
        raise GraphLoadError(
            f"{_where('middleware_order')}: 'auth_first' is not supported; this server authenticates inside each"
            " route, after the custom app's middleware ('middleware_first', the default)"
        )
    app = raw.get("app")
    if app is not None and (not isinstance(app, str) or ":" not in app):
        raise GraphLoadError(f"{_where('app')} must be './path/to/file.py:app' or 'package.module:app', got {app!r}")
    flags = {key: _bool(raw, key) for key in DISABLE_FLAGS}
    return HttpConfig(
        app=app,
        cors=_cors(raw.get("cors")),
        configurable_headers=_headers(raw.get("configurable_headers"), "configurable_headers"),
        logging_headers=_headers(raw.get("logging_headers"), "logging_headers"),
        enable_custom_route_auth=_bool(raw, "enable_custom_route_auth"),
        base_dir=base_dir,
        **flags,
    )
