"""The per-account LLM key of a run being executed (docs/compliance.md, "Per-account LiteLLM keys").

The key was sealed beside the run at its creation (``storage.run_secrets``); the worker executing it, on any
instance and at any attempt, opens it and hands it to the graph as ``configurable.__cogni_llm_key``. A run
created with a key never runs without it: if the key cannot be had, the run fails.
"""

from __future__ import annotations

from typing import Any

from psycopg_pool import AsyncConnectionPool

from cogni_server.storage import run_secrets
from cogni_server.storage.run_secrets import SecretBox


class RunKeyMissing(Exception):
    """A run created with a per-account LLM key whose key cannot be had: it fails rather than use the shared key."""


async def open_run_key(pool: AsyncConnectionPool[Any], secrets: SecretBox | None, run: dict[str, Any]) -> str:
    async with pool.connection() as conn:
        sealed = await run_secrets.load(conn, run["run_id"])
    if sealed is None:
        raise RunKeyMissing(f"run {run['run_id']} was created with an LLM key, but its stored key is gone")
    if secrets is None:
        raise RunKeyMissing(f"run {run['run_id']} has an LLM key, but this server has no COGNI_SECRETS_KEY")
    return secrets.open(sealed)
