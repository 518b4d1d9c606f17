"""System routes (no auth): liveness, a real database health check, server info, Prometheus metrics."""

from __future__ import annotations

import importlib.metadata

from fastapi import APIRouter, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from cogni_server import metrics as server_metrics
from cogni_server.api.context import context
from cogni_server.api.responses import JSONResponse
from cogni_server.services.background import background_features
from cogni_server.services.health import database_problem

router = APIRouter(tags=["system"])


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


@router.get("/ok")
async def ok() -> Response:
    return JSONResponse({"ok": True})


@router.get("/health")
async def health(request: Request) -> Response:
    problem = await database_problem(context(request))
    if problem is not None:
        return JSONResponse({"ok": False, "database": problem}, status_code=503)
    return JSONResponse({"ok": True, "database": "ok"})


@router.get("/info")
async def info(request: Request) -> Response:
    st = context(request)
    http = st.registry.project.http  # langgraph.json's disable_* flags turn families off
    flags = {
        "assistants": not http.disable_assistants,
        "crons": not http.disable_runs,
        "langsmith": False,
        "store": not http.disable_store,
        "thread_streaming": not http.disable_threads,
        "mcp": not http.disable_mcp,
        "a2a": not http.disable_a2a,
    }
    return JSONResponse(
        {
            "version": _version("cogni-server"),
            "langgraph_py_version": _version("langgraph"),
            "flags": flags,
            "store": {"semantic_search": st.store.semantic_search, "index_fields": st.store.index_fields},
            "graphs": st.registry.graph_ids(),
            "thread_streaming": {  # the thread-centric protocol: POST /threads/{id}/commands, .../stream/events
                "transports": ["sse", "websocket"],
                "max_events_per_thread": st.settings.thread_stream_max_events,
                "retention_seconds": st.settings.thread_stream_ttl_seconds,
                "shared": bool(st.settings.redis_url),
            },
            "auth_mode": st.settings.auth_mode,
            "features": background_features(st),
        }
    )


@router.get("/metrics")
async def metrics(request: Request) -> Response:
    await server_metrics.QUEUE_SAMPLER.refresh(context(request).pool)
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
