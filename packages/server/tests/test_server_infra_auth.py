"""Caller authentication: none, API keys, and service JWTs with a pinned algorithm."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from cogni_server.auth import (
    DEFAULT_TENANT,
    AuthError,
    Principal,
    build_authenticator,
    parse_api_keys,
)

SECRET = "s" * 64
AUDIENCE = "cogni-agent-server"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def claims(**overrides: Any) -> dict[str, Any]:
    base = {"sub": "tenant-a", "aud": AUDIENCE, "exp": int(time.time()) + 300, "iat": int(time.time())}
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def rejected(auth: Any, headers: dict[str, str], message: str) -> None:
    with pytest.raises(AuthError, match=message) as caught:
        auth.authenticate(headers)
    assert caught.value.status_code == 401
    assert caught.value.message


@pytest.fixture(scope="module")
def rsa_keys() -> tuple[Any, str]:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public_pem = (
        private.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return private, public_pem


def test_none_mode_is_the_default_tenant() -> None:
    auth = build_authenticator("none")
    assert auth.authenticate({}) == Principal(DEFAULT_TENANT, "none")
    assert DEFAULT_TENANT == "default"


def test_api_key_mode_maps_keys_to_tenants() -> None:
    auth = build_authenticator("api_key", api_keys=parse_api_keys("key-one:tenant-a, key-two:tenant-b"))
    assert auth.authenticate({"x-api-key": "key-one"}) == Principal("tenant-a", "api_key")
    assert auth.authenticate({"X-Api-Key": "key-two"}) == Principal("tenant-b", "api_key")
    rejected(auth, {}, "missing API key")
    rejected(auth, {"x-api-key": "key-three"}, "invalid API key")
    rejected(auth, {"x-api-key": "key-one "}, "invalid API key")


def test_single_api_key_belongs_to_the_default_tenant() -> None:
    assert parse_api_keys("just-a-key") == {"just-a-key": DEFAULT_TENANT}
    auth = build_authenticator("api-key", api_keys=parse_api_keys("just-a-key"))
    assert auth.authenticate({"x-api-key": "just-a-key"}).tenant == DEFAULT_TENANT
    with pytest.raises(ValueError, match="at least one"):
        build_authenticator("api_key", api_keys={})
    with pytest.raises(ValueError, match="invalid API key entry"):
        parse_api_keys("key:")


def test_hs256_jwt_valid_and_invalid() -> None:
    auth = build_authenticator("jwt", jwt_secret=SECRET, jwt_algorithm="HS256", jwt_audience=AUDIENCE)
    good = jwt.encode(claims(), SECRET, algorithm="HS256")
    assert auth.authenticate(bearer(good)) == Principal("tenant-a", "jwt")
    assert auth.authenticate({"authorization": f"bearer {good}"}).tenant == "tenant-a"
    rejected(auth, {}, "missing credentials")
    rejected(auth, {"Authorization": f"Token {good}"}, "malformed Authorization header")
    rejected(auth, bearer(jwt.encode(claims(aud="someone-else"), SECRET, algorithm="HS256")), "audience")
    rejected(auth, bearer(jwt.encode(claims(aud=None), SECRET, algorithm="HS256")), "'aud' claim")
    expired = claims(exp=int(time.time()) - 60)
    rejected(auth, bearer(jwt.encode(expired, SECRET, algorithm="HS256")), "token expired")
    rejected(auth, bearer(jwt.encode(claims(exp=None), SECRET, algorithm="HS256")), "'exp' claim")
    rejected(auth, bearer(jwt.encode(claims(sub=None), SECRET, algorithm="HS256")), "'sub' claim")
    rejected(auth, bearer(jwt.encode(claims(sub=""), SECRET, algorithm="HS256")), "sub")
    wrong_key = jwt.encode(claims(), "w" * 64, algorithm="HS256")
    rejected(auth, bearer(wrong_key), "invalid token")
    rejected(auth, bearer(jwt.encode(claims(), SECRET, algorithm="HS512")), "algorithm is not accepted")
    rejected(auth, bearer("not.a.jwt"), "invalid token")


def test_issuer_is_checked_when_configured() -> None:
    auth = build_authenticator(
        "jwt", jwt_secret=SECRET, jwt_algorithm="HS256", jwt_audience=AUDIENCE, jwt_issuer="cogni-app"
    )
    assert auth.authenticate(bearer(jwt.encode(claims(iss="cogni-app"), SECRET, algorithm="HS256")))
    rejected(auth, bearer(jwt.encode(claims(iss="evil"), SECRET, algorithm="HS256")), "issuer")
    rejected(auth, bearer(jwt.encode(claims(), SECRET, algorithm="HS256")), "'iss' claim")


def unsigned_token(payload: dict[str, Any]) -> str:
    def part(obj: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(payload)}."


def test_rs256_pinned_refuses_hs256_and_alg_none(rsa_keys: tuple[Any, str]) -> None:
    private, public_pem = rsa_keys
    auth = build_authenticator("jwt", jwt_public_key=public_pem, jwt_algorithm="RS256", jwt_audience=AUDIENCE)
    assert auth.authenticate(bearer(jwt.encode(claims(), private, algorithm="RS256"))).tenant == "tenant-a"
    # the classic confusion attack: an HS256 token "signed" with the public key as the HMAC secret
    rejected(auth, bearer(_hmac_token(claims(), public_pem)), "algorithm is not accepted")
    rejected(auth, bearer(unsigned_token(claims())), "algorithm is not accepted")
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    rejected(auth, bearer(jwt.encode(claims(), other, algorithm="RS256")), "invalid token")


def _hmac_token(payload: dict[str, Any], secret: str) -> str:
    """HS256 by hand: PyJWT refuses to use a PEM key as an HMAC secret, an attacker would not."""
    import hashlib
    import hmac

    def b64(data: bytes) -> bytes:
        return base64.urlsafe_b64encode(data).rstrip(b"=")

    signing_input = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode()) + b"." + b64(json.dumps(payload).encode())
    signature = hmac.new(secret.encode(), signing_input, hashlib.sha256).digest()
    return (signing_input + b"." + b64(signature)).decode()


def test_eddsa_public_key() -> None:
    private = ed25519.Ed25519PrivateKey.generate()
    public_pem = (
        private.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    auth = build_authenticator("jwt", jwt_public_key=public_pem, jwt_algorithm="EdDSA", jwt_audience=AUDIENCE)
    token = jwt.encode(claims(sub="tenant-ed"), private, algorithm="EdDSA")
    assert auth.authenticate(bearer(token)) == Principal("tenant-ed", "jwt")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"jwt_secret": "short", "jwt_algorithm": "HS256", "jwt_audience": AUDIENCE}, "at least 32 bytes"),
        ({"jwt_secret": SECRET, "jwt_algorithm": "HS256", "jwt_audience": None}, "needs an audience"),
        ({"jwt_algorithm": "RS256", "jwt_audience": AUDIENCE}, "needs a PEM public key"),
        ({"jwt_public_key": "garbage", "jwt_algorithm": "RS256", "jwt_audience": AUDIENCE}, "not a valid PEM"),
        ({"jwt_secret": SECRET, "jwt_algorithm": "none", "jwt_audience": AUDIENCE}, "unsupported JWT algorithm"),
    ],
)
def test_jwt_misconfiguration_is_a_start_up_error(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build_authenticator("jwt", **kwargs)


def test_unknown_mode() -> None:
    with pytest.raises(ValueError, match="unknown auth mode 'oauth'"):
        build_authenticator("oauth")
