"""Short-lived HS256 service JWTs the app presents to the Agent Server (subject = billing account)."""

from __future__ import annotations

import time
import uuid

import jwt

MIN_SECRET_BYTES = 32
DEFAULT_AUDIENCE = "cogni-agent-server"
DEFAULT_TTL_SECONDS = 300


class ServiceTokenMinter:
    """Mints one token per run: the server derives the tenant from `sub`, never from the request."""

    def __init__(
        self, secret: str, *, audience: str = DEFAULT_AUDIENCE, ttl_seconds: int = DEFAULT_TTL_SECONDS
    ) -> None:
        if len(secret.encode()) < MIN_SECRET_BYTES:
            raise ValueError(f"COGNI_JWT_SECRET must be at least {MIN_SECRET_BYTES} bytes")
        if not 0 < ttl_seconds <= 3600:
            raise ValueError("service token lifetime must be between 1 s and 1 h")
        self._secret = secret
        self.audience = audience
        self.ttl_seconds = ttl_seconds

    def mint(self, billing_account_id: str) -> str:
        if not billing_account_id:
            raise ValueError("a service token needs a billing account as subject")
        now = int(time.time())
        claims = {
            "sub": billing_account_id,
            "aud": self.audience,
            "iat": now,
            "nbf": now,
            "exp": now + self.ttl_seconds,
            "jti": uuid.uuid4().hex,
            "iss": "cogni-app",
        }
        return jwt.encode(claims, self._secret, algorithm="HS256")
