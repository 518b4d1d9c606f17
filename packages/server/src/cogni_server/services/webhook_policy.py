"""Where a webhook may be sent: checked when a run or cron is created (a 422 naming the reason) and
again right before each delivery (the name may resolve elsewhere by then).

Rules: ``http``/``https`` only (``https`` only with ``require_https``), a host, a length limit,
allowed ports when listed; when ``allowed_domains`` is configured the host must match it; a host the
allowlist does not name must resolve only to public addresses (no loopback, private, link-local,
carrier-grade NAT, multicast, reserved or unspecified address). Naming a host in the allowlist is
the only way to send to such an address (e.g. ``127.0.0.1`` for a local receiver).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from urllib.parse import urlsplit

from cogni_server import metrics
from cogni_server.errors import Invalid
from cogni_server.graphs.webhooks_config import WebhooksConfig

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def _kind(ip: IPAddress) -> str | None:
    """Why an address is not a public destination (None when it is)."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip.is_loopback:
        return "loopback"
    if ip.is_link_local:
        return "link-local"
    if ip.is_unspecified:
        return "unspecified"
    if ip.is_multicast:
        return "multicast"
    if ip.is_private:
        return "private"
    if ip.is_reserved:
        return "reserved"
    if not ip.is_global:
        return "non-public"
    return None


async def _resolve(host: str, port: int) -> list[IPAddress]:
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [ipaddress.ip_address(info[4][0]) for info in infos]


async def refusal(config: WebhooksConfig, url: str) -> str | None:
    """Why ``url`` may not receive a webhook, or None when it may."""
    if len(url) > config.max_url_length:
        return f"the URL is longer than {config.max_url_length} characters"
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        return f"the URL is not valid: {exc}"
    scheme = parts.scheme.lower()
    if not scheme and not parts.netloc:
        return "the URL has no host (relative URLs are not supported; give an absolute http(s) URL)"
    if scheme not in ("http", "https"):
        return f"scheme {scheme or '(none)'!r} is not allowed (use http or https)"
    if config.require_https and scheme != "https":
        return "only https webhooks are allowed (webhooks.url.require_https)"
    host = (parts.hostname or "").lower().rstrip(".")
    if not host:
        return "the URL has no host (relative URLs are not supported)"
    port = port or (443 if scheme == "https" else 80)
    if config.allowed_ports and port not in config.allowed_ports:
        return f"port {port} is not allowed (webhooks.url.allowed_ports)"
    if config.host_allowlisted(host):
        return None
    if config.allowed_domains:
        return f"host {host!r} is not in the webhook allowlist"
    try:
        addresses = await _resolve(host, port)
    except (OSError, UnicodeError) as exc:
        return f"host {host!r} does not resolve ({exc})"
    for ip in addresses:
        if kind := _kind(ip):
            return (
                f"host {host!r} resolves to a {kind} address ({ip}); only allowlisted hosts may"
                " receive webhooks there (COGNI_WEBHOOK_ALLOWED_DOMAINS or webhooks.url.allowed_domains)"
            )
    if not addresses:
        return f"host {host!r} does not resolve"
    return None


async def check_webhook(config: WebhooksConfig, url: str | None) -> None:
    """Refuse a run's or cron's webhook URL up front: 422 naming the reason."""
    if url is None:
        return
    reason = await refusal(config, url)
    if reason is not None:
        metrics.WEBHOOKS_REFUSED.labels("create").inc()
        raise Invalid(f"webhook {url[:200]!r} refused: {reason}")
