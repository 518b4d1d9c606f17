"""The operator's per-account LiteLLM keys on `cogni-app serve` as a process, and `cogni-app llm-keys` on the same
database: a key is shown once (minted or rotated) and never listed, not even as its hash; an account has one
active key; rotation replaces it at once; revocation is final; bad ids are 404; only the operator manages keys.
(What LiteLLM makes of the keys is `test_app_llm_keys_proxy.py`; a run's key end to end, the stack test.)"""

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
import psycopg
import pytest

from cogni_ai_core import llm_key_account

from .app_process import app_process

pytestmark = pytest.mark.integration
ADMIN = "llm-keys-admin-" + "a" * 32
SECRET = "llm-keys-secret-" + "b" * 32


@dataclass
class App:
    http: httpx.Client
    db: str

    def admin(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return self.http.request(method, path, headers={"Authorization": f"Bearer {ADMIN}"}, **kwargs)

    def account(self) -> str:
        return str(self.admin("POST", "/v1/admin/accounts", json={"name": "llm", "initialCredits": 1}).json()["id"])

    def listed(self, account: str) -> list[dict[str, Any]]:
        answer = self.admin("GET", f"/v1/admin/accounts/{account}/llm-keys")
        assert answer.status_code == 200, answer.text
        return list(answer.json()["llmKeys"])


@pytest.fixture(scope="module")
def app() -> Iterator[App]:
    env = {"LITELLM_API_KEY": "sk-keys", "COGNI_ADMIN_TOKEN": ADMIN, "COGNI_LLM_KEY_SECRET": SECRET}
    with app_process("cogni_app_llm_keys_routes", "cogni-app-llm-keys", env) as (http, db, proc):
        yield App(http=http, db=db)
        assert SECRET not in proc.output()


def cli(db: str, *args: str, secret: str | None = SECRET) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("COGNI_ADMIN_TOKEN", "COGNI_LLM_KEY_SECRET")}
    if secret is not None:
        env["COGNI_LLM_KEY_SECRET"] = secret
    return subprocess.run(
        [sys.executable, "-m", "cogni_app", "llm-keys", *args],
        env={**env, "DATABASE_URL": db},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_a_key_is_shown_once_and_never_listed_not_even_hashed(app: App) -> None:
    account = app.account()
    minted = app.admin("POST", f"/v1/admin/accounts/{account}/llm-keys", json={"rpmLimit": 30, "tpmLimit": 9000})
    assert minted.status_code == 201 and minted.headers["cache-control"] == "no-store"
    body = minted.json()
    key = body["llmKey"]
    assert llm_key_account(key) == account and key.startswith(body["keyPrefix"])
    assert (body["rpmLimit"], body["tpmLimit"], body["keyAlias"]) == (30, 9000, f"llm-key:{body['id']}")
    listing = json.dumps(app.listed(account))
    assert key not in listing and key.rsplit(".", 1)[1] not in listing
    assert hashlib.sha256(key.encode()).hexdigest() not in listing
    with psycopg.connect(app.db) as conn:
        stored = conn.execute("SELECT row_to_json(k)::text FROM llm_keys k WHERE id = %s", (body["id"],)).fetchone()
    assert stored is not None and key not in stored[0] and hashlib.sha256(key.encode()).hexdigest() in stored[0]

    again = app.admin("POST", f"/v1/admin/accounts/{account}/llm-keys", json={})
    assert (again.status_code, again.json()["error"]) == (409, "llm_key_exists") and body["id"] in again.text


def test_rotation_replaces_the_key_at_once_and_revocation_is_final(app: App) -> None:
    account = app.account()
    first = app.admin("POST", f"/v1/admin/accounts/{account}/llm-keys", json={"rpmLimit": 5}).json()
    second = app.admin("POST", f"/v1/admin/llm-keys/{first['id']}/rotate")
    assert second.status_code == 201 and second.headers["cache-control"] == "no-store"
    rotated = second.json()
    assert (rotated["replaces"], rotated["rpmLimit"]) == (first["id"], 5)
    assert rotated["llmKey"] != first["llmKey"] and llm_key_account(rotated["llmKey"]) == account
    states = {k["id"]: k["revokedAt"] is None for k in app.listed(account)}
    assert states == {first["id"]: False, rotated["id"]: True}

    stale = app.admin("POST", f"/v1/admin/llm-keys/{first['id']}/rotate")
    assert (stale.status_code, stale.json()["error"]) == (409, "key_revoked")
    revoked = app.admin("POST", f"/v1/admin/llm-keys/{rotated['id']}/revoke")
    assert revoked.status_code == 200 and revoked.json()["revokedAt"] is not None
    assert app.admin("POST", f"/v1/admin/llm-keys/{rotated['id']}/revoke").json() == revoked.json()  # idempotent
    assert all(k["revokedAt"] is not None for k in app.listed(account))
    fresh = app.admin("POST", f"/v1/admin/accounts/{account}/llm-keys", json={})
    assert fresh.status_code == 201  # no active key left: a new one may be minted


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/admin/accounts/no-such-account/llm-keys"),
        ("POST", "/v1/admin/accounts/no-such-account/llm-keys"),
        ("POST", "/v1/admin/llm-keys/no-such-key/rotate"),
        ("POST", "/v1/admin/llm-keys/no-such-key/revoke"),
    ],
)
def test_unknown_account_or_key_id_is_404_naming_it(app: App, method: str, path: str) -> None:
    answer = app.admin(method, path, json={}) if method == "POST" else app.admin(method, path)
    assert answer.status_code == 404 and "no-such" in answer.json()["message"]


def test_only_the_operator_manages_llm_keys(app: App) -> None:
    account = app.account()
    path = f"/v1/admin/accounts/{account}/llm-keys"
    assert app.http.post(path, json={}).status_code == 401
    assert app.http.post(path, json={}, headers={"Authorization": "Bearer " + "x" * 40}).status_code == 403
    assert app.admin("POST", path, json={"rpmLimit": 0}).status_code == 400
    assert app.admin("POST", path, json={"label": "x"}).status_code == 422


def test_the_cli_mints_lists_rotates_and_revokes_on_the_apps_database(app: App) -> None:
    account = app.account()
    no_secret = cli(app.db, "mint", account, secret=None)
    assert no_secret.returncode == 2 and "COGNI_LLM_KEY_SECRET" in no_secret.stderr
    minted = cli(app.db, "mint", account, "--rpm-limit", "7")
    assert minted.returncode == 0, minted.stderr
    key = json.loads(minted.stdout)
    assert key["rpmLimit"] == 7 and llm_key_account(key["llmKey"]) == account
    assert [k["id"] for k in app.listed(account)] == [key["id"]]  # the running app sees it

    rotated = json.loads(cli(app.db, "rotate", key["id"]).stdout)
    assert rotated["replaces"] == key["id"]
    listed = cli(app.db, "list", account, secret=None)
    assert listed.returncode == 0 and key["llmKey"] not in listed.stdout and rotated["llmKey"] not in listed.stdout
    assert {k["id"] for k in json.loads(listed.stdout)["llmKeys"]} == {key["id"], rotated["id"]}
    revoked = cli(app.db, "revoke", rotated["id"], secret=None)
    assert revoked.returncode == 0 and json.loads(revoked.stdout)["revokedAt"] is not None
    unknown = cli(app.db, "revoke", "no-such-key")
    assert unknown.returncode == 1 and "no-such-key" in unknown.stderr
