"""The ``webhooks`` block of langgraph.json (the keys of the reference's ``WebhooksConfig``) merged
with the environment, and the ``checkpointer.ttl`` block (thread TTL defaults and the sweeper).

```json
"webhooks": {
  "env_prefix": "LG_WEBHOOK_",
  "url": {"require_https": false, "allowed_domains": ["hooks.example.com", "*.corp.com"],
          "allowed_ports": [443], "max_url_length": 4096},
  "headers": {"Authorization": "Bearer ${{ env.LG_WEBHOOK_TOKEN }}"},
  "signing_secret": "${{ env.LG_WEBHOOK_SECRET }}"
},
"checkpointer": {"ttl": {"strategy": "delete", "default_ttl": 43200,
                         "sweep_interval_minutes": 5, "sweep_limit": 1000}}
```

Every problem is a start-up error (``GraphLoadError``) naming the key, never a silent default.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from cogni_server.graphs.config import GraphLoadError

DEFAULT_MAX_URL_LENGTH = 65536
_ENV_REF = re.compile(r"\$\{\{\s*env\.([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
_URL_KEYS = {"require_https", "allowed_domains", "allowed_ports", "max_url_length", "disable_loopback"}
_WEBHOOK_KEYS = {"env_prefix", "url", "headers", "signing_secret"}
_TTL_KEYS = {"strategy", "default_ttl", "sweep_interval_minutes", "sweep_limit"}
TTL_STRATEGIES = ("delete", "keep_latest")


@dataclass(frozen=True)
class WebhooksConfig:
    """Where webhooks may go and what every delivery carries."""

    allowed_domains: tuple[str, ...] = ()
    allowed_ports: tuple[int, ...] = ()
    require_https: bool = False
    max_url_length: int = DEFAULT_MAX_URL_LENGTH
    headers: Mapping[str, str] = field(default_factory=dict)
    signing_secret: str | None = None
    disabled: bool = False  # http.disable_webhooks: deliveries are recorded as refused, never sent

    def host_allowlisted(self, host: str) -> bool:
        """``host`` is named by the allowlist: exactly, or under a ``*.domain`` entry."""
        host = host.lower().rstrip(".")
        for entry in self.allowed_domains:
            if entry.startswith("*."):
                if host.endswith(entry[1:]) and host != entry[2:]:
                    return True
            elif host == entry:
                return True
        return False


@dataclass(frozen=True)
class ThreadTTLConfig:
    """``checkpointer.ttl``: the default TTL of new threads and the sweeper's pace."""

    strategy: str = "delete"
    default_minutes: float | None = None
    sweep_interval_seconds: float = 300.0
    sweep_limit: int = 1000


def _substitute(value: str, where: str, env_prefix: str | None, environ: Mapping[str, str]) -> str:
    def repl(match: re.Match[str]) -> str:
        name = match.group(1)
        if env_prefix and not name.startswith(env_prefix):
            raise GraphLoadError(f"{where}: ${{{{ env.{name} }}}} is outside webhooks.env_prefix {env_prefix!r}")
        if name not in environ:
            raise GraphLoadError(f"{where}: environment variable {name} is not set")
        return environ[name]

    return _ENV_REF.sub(repl, value)


def _domains(raw: Any, where: str) -> list[str]:
    if not isinstance(raw, list) or not all(isinstance(d, str) and d.strip() for d in raw):
        raise GraphLoadError(f"{where} must be a list of host names")
    return [d.strip().lower().rstrip(".") for d in raw]


def webhooks_config(
    raw_project: Mapping[str, Any],
    *,
    env_allowed_domains: str | None = None,
    env_secret: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> WebhooksConfig:
    """The webhook policy from langgraph.json's ``webhooks`` block plus the environment
    (``COGNI_WEBHOOK_ALLOWED_DOMAINS`` adds hosts, ``COGNI_WEBHOOK_SECRET`` wins over the file)."""
    env = os.environ if environ is None else environ
    block = raw_project.get("webhooks") or {}
    if not isinstance(block, dict):
        raise GraphLoadError("langgraph.json: 'webhooks' must be an object")
    if unknown := set(block) - _WEBHOOK_KEYS:
        raise GraphLoadError(f"langgraph.json: unknown key(s) in 'webhooks': {sorted(unknown)}")
    env_prefix = block.get("env_prefix")
    if env_prefix is not None and not isinstance(env_prefix, str):
        raise GraphLoadError("langgraph.json: webhooks.env_prefix must be a string")
    url = block.get("url") or {}
    if not isinstance(url, dict):
        raise GraphLoadError("langgraph.json: webhooks.url must be an object")
    if unknown := set(url) - _URL_KEYS:
        raise GraphLoadError(f"langgraph.json: unknown key(s) in 'webhooks.url': {sorted(unknown)}")
    domains = _domains(url.get("allowed_domains", []), "langgraph.json: webhooks.url.allowed_domains")
    if env_allowed_domains:
        domains += _domains([d for d in env_allowed_domains.split(",") if d.strip()], "COGNI_WEBHOOK_ALLOWED_DOMAINS")
    ports = url.get("allowed_ports", [])
    if not isinstance(ports, list) or not all(isinstance(p, int) and 0 < p < 65536 for p in ports):
        raise GraphLoadError("langgraph.json: webhooks.url.allowed_ports must be a list of port numbers")
    max_len = url.get("max_url_length", DEFAULT_MAX_URL_LENGTH)
    if not isinstance(max_len, int) or max_len < 10:
        raise GraphLoadError("langgraph.json: webhooks.url.max_url_length must be an integer >= 10")
    headers_raw = block.get("headers") or {}
    if not isinstance(headers_raw, dict) or not all(isinstance(v, str) for v in headers_raw.values()):
        raise GraphLoadError("langgraph.json: webhooks.headers must map header names to strings")
    headers = {
        str(k): _substitute(v, f"langgraph.json: webhooks.headers.{k}", env_prefix, env) for k, v in headers_raw.items()
    }
    secret = block.get("signing_secret")
    if secret is not None:
        if not isinstance(secret, str):
            raise GraphLoadError("langgraph.json: webhooks.signing_secret must be a string")
        secret = _substitute(secret, "langgraph.json: webhooks.signing_secret", env_prefix, env) or None
    return WebhooksConfig(
        allowed_domains=tuple(dict.fromkeys(domains)),
        allowed_ports=tuple(ports),
        require_https=bool(url.get("require_https", False)),
        max_url_length=max_len,
        headers=headers,
        signing_secret=env_secret or secret,
        disabled=bool((raw_project.get("http") or {}).get("disable_webhooks", False)),
    )


def _positive(block: Mapping[str, Any], key: str, default: float | None) -> float | None:
    value = block.get(key, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise GraphLoadError(f"langgraph.json: checkpointer.ttl.{key} must be a positive number, got {value!r}")
    return float(value)


def thread_ttl_config(raw_project: Mapping[str, Any], *, sweep_seconds: float | None = None) -> ThreadTTLConfig:
    """``checkpointer.ttl`` of langgraph.json; ``COGNI_THREAD_TTL_SWEEP_SECONDS`` overrides the interval."""
    checkpointer = raw_project.get("checkpointer") or {}
    if not isinstance(checkpointer, dict):
        raise GraphLoadError("langgraph.json: 'checkpointer' must be an object")
    block = checkpointer.get("ttl") or {}
    if not isinstance(block, dict):
        raise GraphLoadError("langgraph.json: checkpointer.ttl must be an object")
    if unknown := set(block) - _TTL_KEYS:
        raise GraphLoadError(f"langgraph.json: unknown key(s) in 'checkpointer.ttl': {sorted(unknown)}")
    strategy = block.get("strategy", "delete")
    if strategy not in TTL_STRATEGIES:
        raise GraphLoadError(f"langgraph.json: checkpointer.ttl.strategy must be one of {list(TTL_STRATEGIES)}")
    interval = _positive(block, "sweep_interval_minutes", 5.0)
    limit = _positive(block, "sweep_limit", 1000)
    return ThreadTTLConfig(
        strategy=strategy,
        default_minutes=_positive(block, "default_ttl", None),
        sweep_interval_seconds=sweep_seconds or (interval or 5.0) * 60.0,
        sweep_limit=int(limit or 1000),
    )
