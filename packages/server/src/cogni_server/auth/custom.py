"""Custom auth: a ``langgraph_sdk.Auth`` object named by langgraph.json's ``auth.path``.

Its ``@auth.authenticate`` handler turns a request into a user; the user's ``identity`` becomes the
tenant, so every tenant-scoped query keeps isolating users from each other. Authorization
(``@auth.on`` handlers) lives in ``services.authz``; this module only loads the object, reads the
``auth`` block and authenticates.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from langgraph_sdk import Auth
from langgraph_sdk.auth.exceptions import HTTPException as AuthHTTPException

from cogni_server.auth.principal import AuthError, Principal

AUTH_KEYS = ("path", "disable_studio_auth", "openapi")
# What ``@auth.authenticate`` may ask for, by parameter name (as the reference passes them).
AUTHENTICATE_ARGS = frozenset(
    {"request", "scope", "path", "method", "path_params", "query_params", "headers", "authorization", "scopes"}
)
USER_KEY, USER_ID_KEY, PERMISSIONS_KEY = "langgraph_auth_user", "langgraph_auth_user_id", "langgraph_auth_permissions"


class AuthConfigError(RuntimeError):
    """The ``auth`` block of langgraph.json cannot be honoured (a start-up error naming the key)."""


@dataclass(frozen=True)
class CustomAuthConfig:
    """The validated ``auth`` block."""

    path: str
    openapi: dict[str, Any] | None = None
    disable_studio_auth: bool = True


def read_auth_config(raw: Mapping[str, Any], config_path: Path | str = "langgraph.json") -> CustomAuthConfig | None:
    """The ``auth`` block of a langgraph.json document (None when absent); unknown or unsupported keys fail."""
    block = raw.get("auth")
    if block is None:
        return None
    where = f"{config_path}: auth"
    if not isinstance(block, dict):
        raise AuthConfigError(f"{where} must be an object with 'path' ('./auth.py:auth')")
    if unknown := sorted(set(block) - set(AUTH_KEYS)):
        hint = " (auth results are not cached by this server; cache inside your handler)" if "cache" in unknown else ""
        raise AuthConfigError(f"{where}: unsupported key(s) {unknown}{hint}; supported: {list(AUTH_KEYS)}")
    path = block.get("path")
    if not isinstance(path, str) or ":" not in path:
        raise AuthConfigError(f"{where}.path must be './file.py:attr' or 'package.module:attr', got {path!r}")
    studio = block.get("disable_studio_auth", True)
    if studio is not True:
        raise AuthConfigError(
            f"{where}.disable_studio_auth is {studio!r}: this server has no LangSmith workspace to check Studio's"
            " API keys against, so every request (Studio's too) goes through your @auth.authenticate handler."
            " Remove the key or set it to true."
        )
    openapi = block.get("openapi")
    if openapi is not None:
        if not isinstance(openapi, dict) or set(openapi) - {"securitySchemes", "security"}:
            raise AuthConfigError(f"{where}.openapi must be an object with 'securitySchemes' and/or 'security'")
        schemes, security = openapi.get("securitySchemes", {}), openapi.get("security", [])
        if not isinstance(schemes, dict) or not isinstance(security, list):
            raise AuthConfigError(f"{where}.openapi: 'securitySchemes' must be an object and 'security' a list")
    return CustomAuthConfig(path=path, openapi=openapi)


def load_auth(spec: str, base: Path) -> Auth:
    """Import the ``Auth`` object ``spec`` names (a file relative to ``base``, or an importable module)."""
    location, _, attr = spec.rpartition(":")
    if location.endswith(".py") or location.startswith((".", "/")) or "/" in location:
        file = (base / location).resolve()
        if not file.is_file():
            raise AuthConfigError(f"auth.path: file not found: {file}")
        name = f"cogni_project_auth_{file.stem}"
        module_spec = importlib.util.spec_from_file_location(name, file)
        if module_spec is None or module_spec.loader is None:
            raise AuthConfigError(f"auth.path: cannot import {file}")
        module = importlib.util.module_from_spec(module_spec)
        sys.modules[name] = module
        try:
            module_spec.loader.exec_module(module)
        except Exception as exc:
            raise AuthConfigError(f"auth.path: importing {file} failed: {exc!r}") from exc
    else:
        try:
            module = importlib.import_module(location)
        except Exception as exc:
            raise AuthConfigError(f"auth.path: cannot import module {location!r}: {exc!r}") from exc
    obj = getattr(module, attr, None)
    if not isinstance(obj, Auth):
        raise AuthConfigError(f"auth.path {spec!r}: expected a langgraph_sdk.Auth object, got {type(obj).__name__}")
    handler = obj._authenticate_handler
    if handler is None:
        raise AuthConfigError(f"auth.path {spec!r}: the Auth object has no @auth.authenticate handler")
    if not inspect.iscoroutinefunction(handler):
        raise AuthConfigError(f"auth.path {spec!r}: the @auth.authenticate handler must be an async function")
    if unknown := sorted(set(inspect.signature(handler).parameters) - AUTHENTICATE_ARGS):
        raise AuthConfigError(
            f"auth.path {spec!r}: @auth.authenticate asks for unknown parameter(s) {unknown};"
            f" it may take {sorted(AUTHENTICATE_ARGS)}"
        )
    return obj


class AuthUser(Mapping[str, Any]):
    """The authenticated user as handlers and graphs see it: attributes (``user.identity``) and keys
    (``user["identity"]``, ``user.get("token")``), like the reference's user objects (a ``BaseUser``)."""

    def __init__(self, data: Mapping[str, Any]) -> None:
        self._data = dict(data)

    @property
    def identity(self) -> str:
        return str(self._data["identity"])

    @property
    def display_name(self) -> str:
        return str(self._data.get("display_name") or self.identity)

    @property
    def is_authenticated(self) -> bool:
        return bool(self._data.get("is_authenticated", True))

    @property
    def permissions(self) -> Sequence[str]:
        return list(self._data.get("permissions") or [])

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __getattr__(self, name: str) -> Any:
        try:
            return self.__dict__["_data"][name]
        except KeyError:
            raise AttributeError(name) from None

    def to_dict(self) -> dict[str, Any]:
        """What a run stores (JSON): identity, display name, permissions and the handler's extra fields."""
        return {
            **self._data,
            "identity": self.identity,
            "display_name": self.display_name,
            "is_authenticated": self.is_authenticated,
            "permissions": list(self.permissions),
        }

    def __repr__(self) -> str:
        return f"AuthUser(identity={self.identity!r})"


def normalize_user(result: Any) -> AuthUser:
    """The handler's return (a user id string, a dict with ``identity``, or a user object) as an AuthUser."""
    if isinstance(result, str):
        data: dict[str, Any] = {"identity": result}
    elif isinstance(result, Mapping):
        data = dict(result)
    elif isinstance(getattr(result, "identity", None), str):
        data = {k: v for k, v in _items(result)}
        for attr in ("identity", "display_name", "is_authenticated", "permissions"):
            if hasattr(result, attr):
                data[attr] = getattr(result, attr)
    else:
        raise TypeError(f"@auth.authenticate returned {type(result).__name__}: expected a str, a dict or a user")
    identity = data.get("identity")
    if not isinstance(identity, str) or not identity.strip():
        raise TypeError("@auth.authenticate returned a user without a non-empty string 'identity'")
    permissions = data.get("permissions") or []
    if isinstance(permissions, str) or not all(isinstance(p, str) for p in permissions):
        raise TypeError("@auth.authenticate returned 'permissions' that is not a list of strings")
    return AuthUser(data)


def _items(obj: Any) -> Iterator[tuple[str, Any]]:
    try:
        yield from ((str(k), obj[k]) for k in obj)
    except TypeError:
        return


@dataclass
class CustomAuthenticator:
    """Authenticates with the project's ``@auth.authenticate`` handler; the identity is the tenant."""

    auth: Auth
    config: CustomAuthConfig
    _params: frozenset[str] = field(init=False)

    def __post_init__(self) -> None:
        handler = self.auth._authenticate_handler
        self._params = frozenset(inspect.signature(handler).parameters) if handler else frozenset()

    def authenticate(self, headers: Mapping[str, str]) -> Principal:
        raise AuthError("custom auth authenticates whole requests (authenticate_request)", 500)

    async def authenticate_request(self, available: Mapping[str, Any]) -> Principal:
        """Call the handler with the arguments it names (from ``available``); its HTTPException is the answer."""
        handler = self.auth._authenticate_handler
        assert handler is not None  # checked at load
        try:
            result = await handler(**{name: available.get(name) for name in self._params})
        except AuthHTTPException as exc:
            raise AuthError(str(exc.detail), exc.status_code) from None
        try:
            user = normalize_user(result)
        except TypeError as exc:
            raise AuthError(str(exc), 500) from None
        return Principal(user.identity, "custom", user=user)


# The user of the request being served: run creation (HTTP routes, thread-streaming commands, MCP,
# A2A) copies it into the run's configurable without every service signature carrying it.
current_user: ContextVar[AuthUser | None] = ContextVar("cogni_auth_user", default=None)


def user_configurable(user: AuthUser) -> dict[str, Any]:
    """The keys the reference puts in ``config["configurable"]`` for graphs (stored as JSON)."""
    return {USER_KEY: user.to_dict(), USER_ID_KEY: user.identity, PERMISSIONS_KEY: list(user.permissions)}


def custom_authenticator(raw: Mapping[str, Any], config_path: Path) -> CustomAuthenticator | None:
    """The authenticator langgraph.json's ``auth`` block names (None without one)."""
    config = read_auth_config(raw, config_path)
    if config is None:
        return None
    return CustomAuthenticator(load_auth(config.path, Path(config_path).parent), config)
