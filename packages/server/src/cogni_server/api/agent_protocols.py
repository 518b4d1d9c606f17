"""Mounting the agent protocols (MCP at ``/mcp``, A2A at ``/a2a/...`` and the agent card) on the app,
unless the project's ``langgraph.json`` turns them off (``http.disable_mcp`` / ``http.disable_a2a``,
as on the reference server: the routes are then absent, so they answer 404)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from cogni_server.api import a2a, mcp
from cogni_server.graphs import GraphRegistry


def route_disabled(registry: GraphRegistry, switch: str) -> bool:
    """``http.<switch>`` of the project's langgraph.json (``disable_mcp``, ``disable_a2a``); off if absent."""
    return bool(getattr(registry.project.http, switch))


class AgentProtocols:
    """What ``mount`` put on the app; ``running()`` belongs in the app's lifespan."""

    def __init__(self, mcp_endpoint: mcp.McpEndpoint | None) -> None:
        self.mcp = mcp_endpoint

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        if self.mcp is None:
            yield
            return
        async with self.mcp.running():
            yield


def mount(app: FastAPI, registry: GraphRegistry) -> AgentProtocols:
    """Add the MCP and A2A routes the project leaves on."""
    if not route_disabled(registry, "disable_a2a"):
        app.include_router(a2a.router)
    endpoint = None if route_disabled(registry, "disable_mcp") else mcp.mount(app)
    return AgentProtocols(endpoint)
