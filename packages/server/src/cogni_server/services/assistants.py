"""Resolving the assistant a request names: a UUID, or a graph id meaning its system assistant."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import HTTPException

from cogni_server.api.common import AppState
from cogni_server.ids import system_assistant_id
from cogni_server.storage import assistants as assistant_repo
from cogni_server.storage.errors import NotFound
from cogni_server.storage.pool import Conn


def assistant_uuid(st: AppState, value: str) -> uuid.UUID:
    """A UUID as given, or the system assistant of a graph id; 404 for anything else."""
    try:
        return uuid.UUID(str(value))
    except ValueError:
        if value in st.registry.graph_ids():
            return system_assistant_id(value)
    raise HTTPException(404, detail=f"assistant {value!r} not found (not a UUID nor a graph id)")


async def resolve_assistant(conn: Conn, st: AppState, tenant: str, value: str) -> dict[str, Any]:
    """System assistants come from memory (they are read-only); others from Postgres, tenant-scoped."""
    cached = st.system_assistants.get(value)
    if cached is not None:
        return cached
    aid = assistant_uuid(st, value)
    try:
        return await assistant_repo.get(conn, tenant, aid)
    except NotFound:
        raise HTTPException(404, detail=f"assistant {value!r} not found") from None
