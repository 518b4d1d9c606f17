"""Service JWTs the server accepts, and settings that refuse unsafe configuration."""

from __future__ import annotations

import time

import jwt
import pytest
from pydantic import ValidationError

from cogni_app.config import AppSettings
from cogni_app.service_auth import ServiceTokenMinter

SECRET = "s" * 40


def test_service_token_is_hs256_with_account_subject_audience_and_short_expiry() -> None:
    token = ServiceTokenMinter(SECRET, audience="cogni-agent-server").mint("acct-42")
    claims = jwt.decode(token, SECRET, algorithms=["HS256"], audience="cogni-agent-server")
    assert claims["sub"] == "acct-42"
    assert 0 < claims["exp"] - time.time() <= 300
    with pytest.raises(jwt.InvalidAudienceError):
        jwt.decode(token, SECRET, algorithms=["HS256"], audience="someone-else")


def test_short_secret_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 32 bytes"):
        ServiceTokenMinter("short")


def settings(**env: str) -> AppSettings:
    return AppSettings.model_validate({"database_url": "postgresql://x/y", "cogni_jwt_secret": SECRET, **env})


def test_markup_below_one_is_refused() -> None:
    with pytest.raises(ValidationError, match=r"USER_PRICE_MARKUP_FACTOR must be >= 1.0"):
        settings(user_price_markup_factor="0.9")


def test_admin_token_needs_32_chars_and_compares_by_digest() -> None:
    with pytest.raises(ValidationError, match="at least 32"):
        settings(cogni_admin_token="too-short")
    good = settings(cogni_admin_token="a" * 32)
    assert good.admin_token_matches("a" * 32)
    assert not good.admin_token_matches("a" * 31 + "b")
    assert not settings().admin_token_matches("")


def test_executor_routes_default_namespace_and_overrides() -> None:
    assert settings().executor_routes() == {"langgraph": "server"}
    routes = settings(cogni_executor="inproc", cogni_executor_map="langgraph:poet=server").executor_routes()
    assert routes == {"langgraph": "inproc", "langgraph:poet": "server"}
    with pytest.raises(ValidationError, match="unknown provider"):
        settings(cogni_executor_map="langgraph=gpu")


def test_server_executor_without_jwt_secret_is_a_start_up_error() -> None:
    with pytest.raises(ValidationError, match="COGNI_JWT_SECRET is required"):
        AppSettings.model_validate({"database_url": "postgresql://x/y", "cogni_executor": "server"})
