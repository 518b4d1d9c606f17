"""Whose account a run bills: always the authenticated caller's, never one the request names.

Graphs read their billing identity from ``config.configurable`` (``cogni_ai_core.GraphRunConfig``):
``billingAccountId`` is the account charged and ``user`` is what LiteLLM records as the end user,
which the reconciler also reads as the account. Both come from the caller's request, so the server
binds them to the principal's tenant (the JWT ``sub``, the API key's tenant) before a run is stored:

- ``billingAccountId``: another account is refused (403 naming the field); absent, the tenant is
  stamped in, so a graph never sees an account other than the caller's;
- ``user``: another account is refused (403); absent, it stays absent (graphs then use the account);
- ``virtualKeyId``: passed through. The server knows no virtual keys and cannot check one; it only
  labels spend inside the caller's own account, which the two rules above already fix.

In auth mode ``none`` (development, one tenant ``default``) nothing is bound: there is no principal.
"""

from __future__ import annotations

from typing import Any

from cogni_server.errors import Forbidden, Invalid

BILLING_ACCOUNT_KEY = "billingAccountId"
END_USER_KEY = "user"
BOUND_KEYS = (BILLING_ACCOUNT_KEY, END_USER_KEY)


def bind_billing_identity(config: dict[str, Any], tenant: str) -> dict[str, Any]:
    """``config`` with the caller's account as ``configurable.billingAccountId``; raises Forbidden
    when the request (or its assistant) names another account in a bound key."""
    configurable = config.get("configurable") or {}
    if not isinstance(configurable, dict):
        raise Invalid("config.configurable must be an object")
    for key in BOUND_KEYS:
        named = configurable.get(key)
        if named is not None and named != tenant:
            raise Forbidden(
                f"config.configurable.{key} names billing account {named!r}, but the caller is {tenant!r}:"
                " a run is billed to the caller's own account only"
            )
    return {**config, "configurable": {**configurable, BILLING_ACCOUNT_KEY: tenant}}
