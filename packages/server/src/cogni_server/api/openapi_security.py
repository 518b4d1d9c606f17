"""langgraph.json ``auth.openapi``: the security schemes and requirements the OpenAPI document shows.

Documentation only (your ``@auth.authenticate`` handler enforces them), as on the reference.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from cogni_server.auth import Authenticator
from cogni_server.auth.custom import CustomAuthenticator


def install_openapi_security(app: FastAPI, authenticator: Authenticator) -> None:
    """Add ``components.securitySchemes`` and the top-level ``security`` to ``/openapi.json``."""
    if not isinstance(authenticator, CustomAuthenticator) or not authenticator.config.openapi:
        return
    security = authenticator.config.openapi
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = build()
            if schemes := security.get("securitySchemes"):
                schema.setdefault("components", {}).setdefault("securitySchemes", {}).update(schemes)
            if "security" in security:
                schema["security"] = security["security"]
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
