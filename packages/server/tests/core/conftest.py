"""Fixtures for the server-core tests: a real ``cogni-server`` process on a random port, against a
fresh Postgres database, serving the fixture LangGraph project, in api_key mode with two tenants.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from langgraph_sdk import get_client
from langgraph_sdk.client import LangGraphClient

from testsupport import ManagedProcess, free_port, fresh_database

PROJECT = Path(__file__).resolve().parent.parent / "fixtures" / "project" / "langgraph.json"
KEY_A, KEY_B = "server-core-key-a", "server-core-key-b"


@dataclass
class Server:
    url: str
    database_url: str
    process: ManagedProcess


def server_env(database_url: str, **extra: str) -> dict[str, str]:
    env = {
        "LANGGRAPH_DATABASE_URL": database_url,
        "COGNI_AUTH_MODE": "api_key",
        "COGNI_API_KEYS": f"{KEY_A}:tenant-a,{KEY_B}:tenant-b",
        "COGNI_STREAM_HEARTBEAT_SECONDS": "0.5",
        "COGNI_POLL_SECONDS": "0.5",
        "COGNI_MAX_BODY_BYTES": "200000",
        "LANGGRAPH_API_KEY": "",
        "REDIS_URL": "",
    }
    env.update(extra)
    return env


def start_server(
    database_url: str, port: int, *args: str, name: str = "cogni-server", project: Path = PROJECT, **extra: str
) -> ManagedProcess:
    """Start ``python -m cogni_server serve`` (plus ``args``) and wait until it answers /ok."""
    proc = ManagedProcess.python_module(
        "cogni_server",
        "serve",
        "--config",
        str(project),
        "--port",
        str(port),
        *args,
        env=server_env(database_url, **extra),
        name=name,
    )
    try:
        proc.wait_http(f"http://127.0.0.1:{port}/ok", timeout=60)
    except BaseException:
        proc.stop()
        raise
    return proc


@pytest.fixture(scope="session")
def server() -> Iterator[Server]:
    with fresh_database("cogni_server_core") as db:
        port = free_port()
        proc = start_server(db, port)
        try:
            yield Server(f"http://127.0.0.1:{port}", db, proc)
        finally:
            proc.stop()


@pytest.fixture
async def client(server: Server) -> AsyncIterator[LangGraphClient]:
    c = get_client(url=server.url, api_key=KEY_A)
    try:
        yield c
    finally:
        await c.aclose()


@pytest.fixture
async def client_b(server: Server) -> AsyncIterator[LangGraphClient]:
    c = get_client(url=server.url, api_key=KEY_B)
    try:
        yield c
    finally:
        await c.aclose()
