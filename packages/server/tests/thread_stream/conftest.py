"""A real server for the thread-streaming tests: the fixture project plus the thread-streaming
graphs (``thread_streaming.json``), api_key auth with two tenants, in-memory broker and log."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
from langgraph_sdk import get_client
from langgraph_sdk.client import LangGraphClient

from packages.server.tests.core.conftest import KEY_A, KEY_B, Server, start_server
from testsupport import free_port, fresh_database

from .helpers import THREAD_PROJECT

pytestmark = pytest.mark.integration


@pytest.fixture(scope="session")
def ts_server() -> Iterator[Server]:
    with fresh_database("cogni_thread_stream") as db:
        port = free_port()
        proc = start_server(db, port, name="cogni-thread-stream", project=THREAD_PROJECT)
        try:
            yield Server(f"http://127.0.0.1:{port}", db, proc)
        finally:
            proc.stop()


@pytest.fixture
async def client(ts_server: Server) -> AsyncIterator[LangGraphClient]:
    c = get_client(url=ts_server.url, api_key=KEY_A)
    try:
        yield c
    finally:
        await c.aclose()


@pytest.fixture
async def client_b(ts_server: Server) -> AsyncIterator[LangGraphClient]:
    c = get_client(url=ts_server.url, api_key=KEY_B)
    try:
        yield c
    finally:
        await c.aclose()
