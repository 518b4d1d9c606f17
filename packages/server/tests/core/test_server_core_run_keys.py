"""A run's per-account LLM key on its way into the server (services/run_keys.py, storage/run_secrets.py): refused
unless it is a per-account key of the caller's tenant and the server can seal it; sealed so that only the
configured keys open it; never copied into a run's config by `http.configurable_headers`."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet
from pydantic import ValidationError

from cogni_ai_core import compose_llm_key
from cogni_server.config import Settings
from cogni_server.errors import Forbidden, Invalid, Unsupported
from cogni_server.graphs.http_config import HeaderFilter
from cogni_server.services.run_keys import seal_llm_key
from cogni_server.storage.run_secrets import SecretBox, SecretsKeyError, SecretUnreadable

KEY = compose_llm_key("acct-1", "s3cr3t-part")


def test_a_key_of_the_callers_tenant_is_sealed_and_opens_again() -> None:
    box = SecretBox(Fernet.generate_key().decode())
    sealed = seal_llm_key(box, KEY, "acct-1", binds_tenant=True)
    assert KEY.encode() not in sealed and b"s3cr3t" not in sealed
    assert box.open(sealed) == KEY


def test_another_tenants_key_is_forbidden_and_a_foreign_key_invalid() -> None:
    box = SecretBox(Fernet.generate_key().decode())
    with pytest.raises(Forbidden, match="another billing account"):
        seal_llm_key(box, KEY, "acct-2", binds_tenant=True)
    for bad in ("sk-1234", "sk-cogni-", "sk-cogni-abc", "sk-cogni-%%%.x"):
        with pytest.raises(Invalid, match="not a per-account LiteLLM key"):
            seal_llm_key(box, bad, "acct-1", binds_tenant=True)
    assert box.open(seal_llm_key(box, KEY, "default", binds_tenant=False)) == KEY  # auth mode none: no tenant


def test_without_a_secrets_key_a_sent_key_is_refused_not_kept_in_clear() -> None:
    with pytest.raises(Unsupported, match="COGNI_SECRETS_KEY"):
        seal_llm_key(None, KEY, "acct-1", binds_tenant=True)


def test_rotating_the_secrets_key_keeps_old_ciphertexts_readable() -> None:
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    sealed = SecretBox(old).seal(KEY)
    assert SecretBox(f"{new},{old}").open(sealed) == KEY
    with pytest.raises(SecretUnreadable):
        SecretBox(new).open(sealed)


def test_a_bad_secrets_key_stops_the_server_at_start(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(SecretsKeyError):
        SecretBox("not-a-fernet-key")
    monkeypatch.setenv("COGNI_SECRETS_KEY", "not-a-fernet-key")
    with pytest.raises(ValidationError, match="COGNI_SECRETS_KEY must be Fernet keys"):
        Settings()
    monkeypatch.setenv("COGNI_SECRETS_KEY", Fernet.generate_key().decode())
    assert Settings().secrets_key is not None


def test_configurable_headers_never_copy_the_key() -> None:
    everything = HeaderFilter.of(["*"], [])
    assert everything.pick({"X-Cogni-LLM-Key": KEY, "X-User-Id": "u"}) == {"x-user-id": "u"}


def test_events_of_a_keyed_run_lose_the_key_and_keep_everything_else() -> None:
    from cogni_server.runs.stream_modes import drop_llm_key
    from cogni_server.serde import dumps

    event = {"config": {"configurable": {"thread_id": "t", "__cogni_llm_key": KEY}}, "next": [], "values": {"a": 1}}
    cleaned = drop_llm_key(dumps(event))
    assert KEY.encode() not in cleaned
    assert cleaned == dumps({"config": {"configurable": {"thread_id": "t"}}, "next": [], "values": {"a": 1}})
    untouched = dumps({"values": {"text": "no key here"}})
    assert drop_llm_key(untouched) is untouched


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("POST", "/threads/5f0c/runs", 200),
        ("POST", "/threads/5f0c/runs/stream", 200),
        ("POST", "/runs/wait", 200),
        ("POST", "/runs/batch", 200),
        ("POST", "/runs/crons", 200),
        ("POST", "/threads/5f0c/runs/crons", 200),
        ("PATCH", "/runs/crons/7a1b", 200),
        ("POST", "/threads/5f0c/commands", 200),
        ("POST", "/a2a/chat", 200),
        ("POST", "/mcp", 200),
        ("POST", "/threads", 422),
        ("POST", "/runs/crons/search", 422),
        ("GET", "/runs/crons/7a1b", 422),
        ("DELETE", "/runs/crons/7a1b", 422),
        ("POST", "/threads/5f0c/stream/events", 422),
        ("GET", "/threads/5f0c/runs", 422),
    ],
)
async def test_the_key_header_is_refused_where_no_run_can_be_created(method: str, path: str, status: int) -> None:
    import httpx
    from starlette.types import Receive, Scope, Send

    from cogni_server.api.middleware import LlmKeyOnlyOnRunCreation

    async def ok(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    transport = httpx.ASGITransport(app=LlmKeyOnlyOnRunCreation(ok))
    async with httpx.AsyncClient(transport=transport, base_url="http://server") as client:
        with_key = await client.request(method, path, headers={"X-Cogni-LLM-Key": KEY})
        without = await client.request(method, path)
    assert (with_key.status_code, without.status_code) == (status, 200)
    assert KEY not in with_key.text
