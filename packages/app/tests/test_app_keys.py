"""The operator's API-key management on `cogni-app serve` as a process: a listing shows no secret, a revoked
key is refused on its very next request, a rotated key's old secret is refused at once and its new one works,
and `cogni-app keys` does the same against the database the running app uses."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from testsupport import fresh_database

from .app_process import app_process

pytestmark = pytest.mark.integration
ADMIN = "keys-admin-" + "a" * 32


@dataclass
class App:
    http: httpx.Client
    db: str

    def admin(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return self.http.request(method, path, headers={"Authorization": f"Bearer {ADMIN}"}, **kwargs)

    def account(self, name: str) -> str:
        return str(self.admin("POST", "/v1/admin/accounts", json={"name": name, "initialCredits": 100}).json()["id"])

    def issue(self, account: str, label: str) -> str:
        response = self.admin("POST", f"/v1/admin/accounts/{account}/api-keys", json={"label": label})
        assert response.status_code == 201, response.text
        assert response.headers["cache-control"] == "no-store"  # no cache on the way keeps the key
        return str(response.json()["apiKey"])

    def keys(self, account: str) -> list[dict[str, Any]]:
        response = self.admin("GET", f"/v1/admin/accounts/{account}/api-keys")
        assert response.status_code == 200, response.text
        return list(response.json()["apiKeys"])

    def key_id(self, account: str, api_key: str) -> str:
        [key] = [k for k in self.keys(account) if api_key.startswith(k["keyPrefix"])]
        return str(key["id"])

    def as_user(self, api_key: str) -> httpx.Response:
        """A request an API key's holder makes: the account's activity."""
        return self.http.get("/v1/activity", headers={"Authorization": f"Bearer {api_key}"})


@pytest.fixture(scope="module")
def app() -> Iterator[App]:
    env = {"LITELLM_API_KEY": "sk-keys", "COGNI_ADMIN_TOKEN": ADMIN}
    with app_process("cogni_app_keys", "cogni-app-keys", env) as (http, db, _):
        yield App(http=http, db=db)


def keys_cli(db: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("COGNI_ADMIN_TOKEN", "COGNI_JWT_SECRET")}
    return subprocess.run(
        [sys.executable, "-m", "cogni_app", "keys", *args],
        env={**env, "DATABASE_URL": db},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_listing_shows_every_key_but_no_secret_or_hash(app: App) -> None:
    account = app.account("listing")
    other = app.account("someone else")
    first, second = app.issue(account, "laptop"), app.issue(account, "ci")
    app.issue(other, "theirs")
    response = app.admin("GET", f"/v1/admin/accounts/{account}/api-keys")
    assert response.status_code == 200
    listed = response.json()["apiKeys"]
    assert [k["label"] for k in listed] == ["ci", "laptop"]  # newest first, the other account's key not among them
    for key, secret in zip(listed, (second, first), strict=True):
        assert set(key) == {"id", "label", "keyPrefix", "billingAccountId", "virtualKeyId", "createdAt", "revokedAt"}
        assert secret.startswith(key["keyPrefix"]) and len(key["keyPrefix"]) < len(secret) // 4
        assert key["billingAccountId"] == account and key["revokedAt"] is None
    for secret in (first, second):
        assert secret not in response.text
        assert hashlib.sha256(secret.encode()).hexdigest() not in response.text


def test_a_revoked_key_is_refused_on_its_very_next_request(app: App) -> None:
    account = app.account("revoke")
    doomed, kept = app.issue(account, "leaked"), app.issue(account, "fine")
    assert app.as_user(doomed).status_code == 200
    key_id = app.key_id(account, doomed)
    revoked = app.admin("POST", f"/v1/admin/api-keys/{key_id}/revoke")
    assert revoked.status_code == 200, revoked.text
    assert revoked.json()["id"] == key_id and revoked.json()["revokedAt"] is not None
    refused = app.as_user(doomed)  # the very next request
    assert refused.status_code == 401, refused.text
    assert refused.json()["error"] == "unauthorized"
    assert 'error="invalid_token"' in refused.headers["www-authenticate"]
    chat = app.http.post("/v1/chat", json={"message": "hi"}, headers={"Authorization": f"Bearer {doomed}"})
    assert chat.status_code == 401  # every route that takes an API key, a chat included
    assert app.as_user(kept).json()["billingAccountId"] == account  # the account's other key is untouched
    again = app.admin("POST", f"/v1/admin/api-keys/{key_id}/revoke")  # idempotent: the first time stays
    assert again.status_code == 200 and again.json()["revokedAt"] == revoked.json()["revokedAt"]
    states = {k["label"]: k["revokedAt"] for k in app.keys(account)}
    assert states == {"leaked": revoked.json()["revokedAt"], "fine": None}


def test_rotation_refuses_the_old_secret_at_once_and_the_new_one_works(app: App) -> None:
    account = app.account("rotate")
    old = app.issue(account, "server-1")
    assert app.as_user(old).status_code == 200
    key_id = app.key_id(account, old)
    response = app.admin("POST", f"/v1/admin/api-keys/{key_id}/rotate")
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    rotated = response.json()
    new = rotated["apiKey"]
    assert new != old and new.startswith(rotated["keyPrefix"])
    assert (rotated["id"], rotated["label"], rotated["revokedAt"]) == (key_id, "server-1", None)
    assert app.as_user(old).status_code == 401
    assert app.as_user(new).json()["billingAccountId"] == account
    [listed] = app.keys(account)  # the same key, not a second one
    assert listed["id"] == key_id and listed["keyPrefix"] == rotated["keyPrefix"]
    app.admin("POST", f"/v1/admin/api-keys/{key_id}/revoke")
    refused = app.admin("POST", f"/v1/admin/api-keys/{key_id}/rotate")  # rotation cannot revive a revoked key
    assert refused.status_code == 409 and refused.json()["error"] == "key_revoked"
    assert app.as_user(new).status_code == 401


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/admin/accounts/no-such-account/api-keys"),
        ("POST", "/v1/admin/api-keys/no-such-key/revoke"),
        ("POST", "/v1/admin/api-keys/no-such-key/rotate"),
    ],
)
def test_unknown_account_or_key_id_is_404_naming_it(app: App, method: str, path: str) -> None:
    response = app.admin(method, path)
    assert response.status_code == 404, response.text
    assert "no-such" in response.json()["message"]


def test_only_the_operator_manages_keys(app: App) -> None:
    account = app.account("not an operator")
    own = app.issue(account, "mine")
    key_id = app.key_id(account, own)
    for method, path in [
        ("GET", f"/v1/admin/accounts/{account}/api-keys"),
        ("POST", f"/v1/admin/api-keys/{key_id}/revoke"),
        ("POST", f"/v1/admin/api-keys/{key_id}/rotate"),
    ]:
        assert app.http.request(method, path).status_code == 401
        as_key = app.http.request(method, path, headers={"Authorization": f"Bearer {own}"})
        assert as_key.status_code == 403  # an account's API key is not the operator token
        assert own not in as_key.text
    assert app.as_user(own).status_code == 200  # none of that revoked or rotated anything
    assert app.keys(account)[0]["revokedAt"] is None


def test_the_cli_lists_rotates_and_revokes_what_the_running_app_checks(app: App) -> None:
    account = app.account("cli")
    old = app.issue(account, "cli-key")
    listed = keys_cli(app.db, "list", account)
    assert listed.returncode == 0, listed.stderr
    [key] = json.loads(listed.stdout)["apiKeys"]
    assert old.startswith(key["keyPrefix"]) and old not in listed.stdout and key["label"] == "cli-key"

    rotated = keys_cli(app.db, "rotate", key["id"])
    assert rotated.returncode == 0, rotated.stderr
    new = json.loads(rotated.stdout)["apiKey"]
    assert app.as_user(old).status_code == 401
    assert app.as_user(new).json()["billingAccountId"] == account

    revoked = keys_cli(app.db, "revoke", key["id"])
    assert revoked.returncode == 0, revoked.stderr
    assert json.loads(revoked.stdout)["revokedAt"] is not None
    assert app.as_user(new).status_code == 401
    assert app.keys(account)[0]["revokedAt"] == json.loads(revoked.stdout)["revokedAt"]

    for args in (("revoke", "no-such-key"), ("rotate", "no-such-key"), ("list", "no-such-account")):
        missing = keys_cli(app.db, *args)
        assert missing.returncode == 1 and args[1] in missing.stderr, missing.stderr
    again = keys_cli(app.db, "rotate", key["id"])
    assert again.returncode == 1 and "revoked" in again.stderr


def test_the_cli_on_a_database_never_migrated_says_so() -> None:
    with fresh_database("cogni_app_keys_bare") as bare:
        done = keys_cli(bare, "list", "some-account")
    assert done.returncode == 2 and "cogni-app migrate" in done.stderr, done.stderr
