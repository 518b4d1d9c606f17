"""Shared by the fault tests (issue 12): the fault fixture project and a server started on it."""

from __future__ import annotations

from pathlib import Path

from testsupport import ManagedProcess

from .conftest import start_server

FAULTS_PROJECT = Path(__file__).resolve().parent.parent / "fixtures" / "faults" / "langgraph.json"


def start_faults_server(database_url: str, port: int, *, name: str, **env: str) -> ManagedProcess:
    """A server on the fault graphs (``billing_probe``, ``recorder``, ``ticker``); the last
    ``--config`` wins over the core project's."""
    return start_server(database_url, port, "--config", str(FAULTS_PROJECT), name=name, **env)
