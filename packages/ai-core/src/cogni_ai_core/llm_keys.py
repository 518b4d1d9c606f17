"""Per-account LiteLLM keys as they travel (docs/compliance.md, "Key lifecycle"): their form, the header the app
sends a run's key in, and the configurable key the Agent Server hands it to the graph under.

A key is `sk-cogni-<account id, base64url without padding>.<secret>`. The account is readable so the Agent
Server can refuse a run whose key names another tenant without asking anyone; LiteLLM's hook checks the
whole key's hash against the app's table.
"""

import base64
import binascii

LLM_KEY_PREFIX = "sk-cogni-"
LLM_KEY_HEADER = "X-Cogni-LLM-Key"
"""The request header of run creation on the Agent Server that carries the run's key (never stored in clear)."""
LLM_KEY_CONFIGURABLE = "__cogni_llm_key"
"""The `configurable` key the graph's LLM factory reads the run's key from. The leading `__` keeps LangGraph and
LangChain from copying it into checkpoint or run metadata (they copy only scalars whose key lacks it)."""


def compose_llm_key(account_id: str, secret: str) -> str:
    encoded = base64.urlsafe_b64encode(account_id.encode("utf-8")).decode("ascii").rstrip("=")
    return f"{LLM_KEY_PREFIX}{encoded}.{secret}"


def llm_key_account(key: str) -> str | None:
    """The billing account a key names; None when it is not of that form."""
    if not key.startswith(LLM_KEY_PREFIX):
        return None
    encoded, dot, secret = key[len(LLM_KEY_PREFIX) :].partition(".")
    if not dot or not encoded or not secret:
        return None
    try:
        return base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode("utf-8") or None
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
