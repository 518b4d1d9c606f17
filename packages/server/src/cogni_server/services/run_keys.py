"""A run's per-account LiteLLM key on its way in (docs/compliance.md, "Key lifecycle").

The app sends the key with any request that creates runs (header ``X-Cogni-LLM-Key``: run creation, the
thread-streaming commands, A2A, MCP, crons); it must be the caller's: the key names its billing account
(``cogni_ai_core.llm_key_account``), which must be the authenticated tenant (403 otherwise; LiteLLM's hook then
checks the whole key against the app's table). It is sealed with ``COGNI_SECRETS_KEY`` before anything stores
it; a server without that setting refuses the key (422) rather than keep it in clear or drop it.
"""

from __future__ import annotations

from cogni_ai_core import LLM_KEY_HEADER, LLM_KEY_PREFIX, llm_key_account
from cogni_server.auth import NoAuth
from cogni_server.errors import Forbidden, Invalid, Unsupported
from cogni_server.services.context import ServerContext
from cogni_server.storage.run_secrets import SecretBox


def seal_llm_key(box: SecretBox | None, key: str, tenant: str, *, binds_tenant: bool) -> bytes:
    """The key's ciphertext, once it is known to be a per-account key of ``tenant``."""
    if box is None:
        raise Unsupported(
            f"{LLM_KEY_HEADER} needs COGNI_SECRETS_KEY on the server (it keeps the key encrypted while the run"
            " needs it); set it, or send no key and let the run use the server's LITELLM_API_KEY"
        )
    account = llm_key_account(key.strip())
    if account is None:
        raise Invalid(f"{LLM_KEY_HEADER} is not a per-account LiteLLM key ({LLM_KEY_PREFIX}<account>.<secret>)")
    if binds_tenant and account != tenant:
        raise Forbidden(f"{LLM_KEY_HEADER} belongs to another billing account than the caller's ({tenant!r})")
    return box.seal(key.strip())


def binds_tenant(ctx: ServerContext) -> bool:
    """Whether a key must name the caller's tenant (every auth mode but ``none``, which has no tenant)."""
    return not isinstance(ctx.authenticator, NoAuth)


def seal_for(ctx: ServerContext, key: str, tenant: str) -> bytes:
    """``seal_llm_key`` with this server's keys and auth mode."""
    return seal_llm_key(ctx.secrets, key, tenant, binds_tenant=binds_tenant(ctx))


def accept_llm_key(ctx: ServerContext, key: str | None, tenant: str) -> str | None:
    """The key a request offers for the runs it may create, checked before the request does anything (the same
    422/403 as run creation); None when it sent none. Each run seals it again when it is created."""
    if key is None:
        return None
    seal_for(ctx, key, tenant)
    return key.strip()
