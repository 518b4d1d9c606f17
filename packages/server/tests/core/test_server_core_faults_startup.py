"""Instances started together on a fresh database all come up (issue 12): our migrations and the
checkpointer's own ``setup()`` serialise on advisory locks, so concurrent starters do not race."""

from __future__ import annotations

import pytest

from testsupport import ManagedProcess, free_port, fresh_database

from .conftest import PROJECT, server_env

INSTANCES = 3
ROUNDS = 3


def _launch(database_url: str, port: int, name: str) -> ManagedProcess:
    return ManagedProcess.python_module(
        "cogni_server",
        "serve",
        "--config",
        str(PROJECT),
        "--port",
        str(port),
        env=server_env(database_url, COGNI_POOL_MIN_SIZE="1", COGNI_POOL_MAX_SIZE="4"),
        name=name,
    )


@pytest.mark.parametrize("round_", range(ROUNDS))
def test_instances_started_at_once_on_a_fresh_database_all_come_up(round_: int) -> None:
    with fresh_database("cogni_server_core_boot") as db:
        ports = [free_port() for _ in range(INSTANCES)]
        procs = [_launch(db, port, f"boot-{round_}-{i}") for i, port in enumerate(ports)]
        try:
            for proc, port in zip(procs, ports, strict=True):
                proc.wait_http(f"http://127.0.0.1:{port}/ok", timeout=90)
        finally:
            for proc in procs:
                proc.stop()
