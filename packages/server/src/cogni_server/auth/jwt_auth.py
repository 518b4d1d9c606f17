"""Service JWT authentication: ``Authorization: Bearer <jwt>``; the token's ``sub`` is the tenant.

The algorithm is pinned by configuration (a token cannot choose it, so ``alg: none`` and HS/RS
confusion fail), the audience is mandatory and checked, ``exp`` is required and checked, ``iss`` is
checked when configured.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jwt
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from cogni_server.auth.principal import AuthError, Principal, header

HMAC_ALGORITHMS = frozenset({"HS256", "HS384", "HS512"})
PUBLIC_KEY_ALGORITHMS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)
MIN_SECRET_BYTES = 32
LEEWAY_SECONDS = 5


class JwtAuthenticator:
    """Validates bearer tokens against one pinned algorithm and key."""

    def __init__(
        self,
        *,
        algorithm: str,
        secret: str | None,
        public_key: str | None,
        audience: str | None,
        issuer: str | None,
    ) -> None:
        if not audience:
            raise ValueError("JWT auth needs an audience (tokens without the right 'aud' are refused)")
        self._key: Any
        if algorithm in HMAC_ALGORITHMS:
            if not secret or len(secret.encode()) < MIN_SECRET_BYTES:
                raise ValueError(f"JWT auth with {algorithm} needs a secret of at least {MIN_SECRET_BYTES} bytes")
            self._key = secret
        elif algorithm in PUBLIC_KEY_ALGORITHMS:
            if not public_key:
                raise ValueError(f"JWT auth with {algorithm} needs a PEM public key")
            try:
                self._key = load_pem_public_key(public_key.encode())
            except ValueError as exc:
                raise ValueError(f"JWT public key is not a valid PEM public key: {exc}") from exc
        else:
            supported = sorted(HMAC_ALGORITHMS | PUBLIC_KEY_ALGORITHMS)
            raise ValueError(f"unsupported JWT algorithm {algorithm!r}; use one of {supported}")
        self._algorithms = [algorithm]
        self._audience = audience
        self._issuer = issuer
        required = ["exp", "sub", "aud"] + (["iss"] if issuer else [])
        self._options: Any = {"require": required}

    def authenticate(self, headers: Mapping[str, str]) -> Principal:
        value = header(headers, "authorization")
        if not value:
            raise AuthError("missing credentials: send 'Authorization: Bearer <token>'")
        scheme, _, token = value.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise AuthError("malformed Authorization header: expected 'Bearer <token>'")
        try:
            claims = jwt.decode(
                token,
                self._key,
                algorithms=self._algorithms,
                audience=self._audience,
                issuer=self._issuer,
                options=self._options,
                leeway=LEEWAY_SECONDS,
            )
        except jwt.ExpiredSignatureError:
            raise AuthError("token expired") from None
        except jwt.InvalidAudienceError:
            raise AuthError("token audience is not accepted by this server") from None
        except jwt.InvalidIssuerError:
            raise AuthError("token issuer is not accepted by this server") from None
        except jwt.MissingRequiredClaimError as exc:
            raise AuthError(f"token is missing the required '{exc.claim}' claim") from None
        except jwt.InvalidAlgorithmError:
            raise AuthError(f"token algorithm is not accepted (expected {self._algorithms[0]})") from None
        except jwt.PyJWTError as exc:
            raise AuthError(f"invalid token: {exc}") from None
        subject = claims.get("sub")
        if not isinstance(subject, str) or not subject.strip():
            raise AuthError("token 'sub' (the tenant) must be a non-empty string")
        return Principal(subject, "jwt")
