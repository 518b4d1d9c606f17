"""The ``webhooks`` and ``checkpointer.ttl`` blocks of langgraph.json, the webhook URL policy, the
signature, and cron schedule checks: pure functions, no server."""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import UTC, datetime

import pytest

from cogni_server.errors import Invalid
from cogni_server.graphs.config import GraphLoadError
from cogni_server.graphs.webhooks_config import WebhooksConfig, thread_ttl_config, webhooks_config
from cogni_server.services.cron_schedule import check_schedule, next_tick, parse_end_time
from cogni_server.services.webhook_policy import refusal
from cogni_server.services.webhooks import backoff, signature


def test_webhooks_block_with_env_substitution() -> None:
    raw = {
        "webhooks": {
            "env_prefix": "LG_WEBHOOK_",
            "url": {
                "allowed_domains": ["Hooks.Example.com", "*.corp.com"],
                "allowed_ports": [443],
                "require_https": True,
            },
            "headers": {"Authorization": "Bearer ${{ env.LG_WEBHOOK_TOKEN }}"},
            "signing_secret": "${{ env.LG_WEBHOOK_SECRET }}",
        }
    }
    env = {"LG_WEBHOOK_TOKEN": "t", "LG_WEBHOOK_SECRET": "s"}
    config = webhooks_config(raw, env_allowed_domains="127.0.0.1, localhost", environ=env)
    assert config.allowed_domains == ("hooks.example.com", "*.corp.com", "127.0.0.1", "localhost")
    assert config.headers == {"Authorization": "Bearer t"} and config.signing_secret == "s"
    assert webhooks_config(raw, env_secret="from-env", environ=env).signing_secret == "from-env"
    assert config.host_allowlisted("a.corp.com") and not config.host_allowlisted("corp.com")
    assert not config.host_allowlisted("evilcorp.com")
    for bad, words in (
        ({"webhooks": {"headers": {"A": "${{ env.OTHER }}"}, "env_prefix": "LG_"}}, "outside webhooks.env_prefix"),
        ({"webhooks": {"headers": {"A": "${{ env.LG_MISSING }}"}}}, "not set"),
        ({"webhooks": {"bogus": 1}}, "unknown key"),
        ({"webhooks": {"url": {"allowed_ports": ["x"]}}}, "allowed_ports"),
    ):
        with pytest.raises(GraphLoadError, match=words):
            webhooks_config(bad, environ={"OTHER": "1"})


def test_ttl_block() -> None:
    config = thread_ttl_config({"checkpointer": {"ttl": {"default_ttl": 60, "sweep_interval_minutes": 2}}})
    assert config.default_minutes == 60 and config.sweep_interval_seconds == 120 and config.strategy == "delete"
    assert thread_ttl_config({}, sweep_seconds=1.5).sweep_interval_seconds == 1.5
    assert thread_ttl_config({}).default_minutes is None
    for bad in ({"strategy": "bogus"}, {"default_ttl": -1}, {"nope": 1}):
        with pytest.raises(GraphLoadError):
            thread_ttl_config({"checkpointer": {"ttl": bad}})


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("http://127.0.0.1:8000/x", "loopback"),
        ("http://[::1]/x", "loopback"),
        ("http://[::ffff:10.0.0.1]/x", "private"),
        ("http://192.168.1.10/x", "private"),
        ("http://100.64.0.1/x", "non-public"),
        ("http://169.254.169.254/", "link-local"),
        ("http://0.0.0.0/", "unspecified"),
        ("http://224.0.0.1/", "multicast"),
        ("gopher://8.8.8.8/", "scheme 'gopher'"),
        ("/relative", "no host"),
        ("http://8.8.8.8:99999/", "not valid"),
    ],
)
async def test_policy_refuses_non_public_destinations(url: str, words: str) -> None:
    reason = await refusal(WebhooksConfig(), url)
    assert reason is not None and words in reason


async def test_policy_allows_public_and_allowlisted() -> None:
    assert await refusal(WebhooksConfig(), "https://8.8.8.8/hook?q=1") is None
    local = WebhooksConfig(allowed_domains=("127.0.0.1",))
    assert await refusal(local, "http://127.0.0.1:9/x") is None
    assert "allowlist" in (await refusal(local, "http://8.8.8.8/x") or "")
    strict = WebhooksConfig(require_https=True, allowed_ports=(443,), max_url_length=30)
    assert "https" in (await refusal(strict, "http://8.8.8.8/x") or "")
    assert "port 8443" in (await refusal(strict, "https://8.8.8.8:8443/") or "")
    assert "longer" in (await refusal(strict, "https://8.8.8.8/" + "x" * 40) or "")


def test_signature_is_standard_webhooks_v1() -> None:
    body = b'{"a":1}'
    sig = signature("secret", "id-1", 1700000000, body)
    digest = hmac.new(b"secret", b"id-1.1700000000." + body, hashlib.sha256).digest()
    assert sig == "v1," + base64.b64encode(digest).decode()
    key = base64.b64encode(b"raw-key").decode()
    digest = hmac.new(b"raw-key", b"id-1.1700000000." + body, hashlib.sha256).digest()
    assert signature("whsec_" + key, "id-1", 1700000000, body) == "v1," + base64.b64encode(digest).decode()
    assert [backoff(2.0, n) for n in (1, 2, 3)] == [2.0, 4.0, 8.0] and backoff(2.0, 50) == 600.0


def test_schedules() -> None:
    assert check_schedule(" 0 9 * * MON-FRI ", allow_seconds=False) == "0 9 * * MON-FRI"
    assert check_schedule("@hourly", allow_seconds=False) == "@hourly"
    assert check_schedule("* * * * * *", allow_seconds=True) == "* * * * * *"
    for bad in ("* * * * * *", "0 0 1 1 * * 2030", "61 * * * *", "", "not a cron"):
        with pytest.raises(Invalid, match="Invalid cron schedule"):
            check_schedule(bad, allow_seconds=False)
    start = datetime(2026, 12, 1, 5, 0, 37, tzinfo=UTC)
    assert next_tick("* * * * *", None, start) == datetime(2026, 12, 1, 5, 1, tzinfo=UTC)
    assert next_tick("* * * * *", None, datetime(2026, 12, 1, 5, 1, tzinfo=UTC)).minute == 2  # strictly after
    assert next_tick("0 9 * * *", "America/New_York", start) == datetime(2026, 12, 1, 14, 0, tzinfo=UTC)
    assert next_tick("30 8 * * *", "Asia/Kolkata", start) == datetime(2026, 12, 2, 3, 0, tzinfo=UTC)
    assert parse_end_time("2030-01-01T00:00:00") == datetime(2030, 1, 1, tzinfo=UTC)  # naive is UTC
    assert parse_end_time("2030-01-01T00:00:00.000Z") == datetime(2030, 1, 1, tzinfo=UTC)
    with pytest.raises(Invalid, match="end_time"):
        parse_end_time("tomorrow")
