"""No double execution (issue 12): leases are renewed until a run really stopped, a worker whose
lease was taken stops the run without finishing it, and the drain must fit in the lease.

The ``recorder`` graph appends ``start|end|cancelled <pid> <attempt> <step> <time>`` lines to
``FAULTS_RECORD_FILE``; from them the tests rebuild who executed which step when.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
from langgraph_sdk import get_client
from pydantic import ValidationError

from cogni_server.config import Settings
from testsupport import free_port, fresh_database

from .conftest import KEY_A, PROJECT, server_env
from .faults_support import start_faults_server


@dataclass
class Interval:
    pid: int
    attempt: int
    step: int
    start: float
    stop: float | None = None
    how: str = "running"


def read_intervals(path: Path) -> list[Interval]:
    """One interval per executed step, closed by its ``end`` or ``cancelled`` line."""
    open_: dict[tuple[int, int, int], Interval] = {}
    done: list[Interval] = []
    for line in path.read_text().splitlines() if path.exists() else []:
        kind, pid, attempt, step, at = line.split()
        key = (int(pid), int(attempt), int(step))
        if kind == "start":
            open_[key] = Interval(*key, start=float(at))
        else:
            interval = open_.pop(key)
            interval.stop, interval.how = float(at), kind
            done.append(interval)
    return done + list(open_.values())


def assert_one_executor_at_a_time(intervals: list[Interval]) -> None:
    for a in intervals:
        for b in intervals:
            if a.pid == b.pid:
                continue
            a_stop = a.stop if a.stop is not None else float("inf")
            b_stop = b.stop if b.stop is not None else float("inf")
            assert a_stop <= b.start or b_stop <= a.start, f"executed by two processes at once: {a} and {b}"


def forks(database_url: str, thread_id: str) -> list[Any]:
    """Checkpoints of the thread that share a parent: two histories written from one point."""
    with psycopg.connect(database_url) as conn:
        return conn.execute(
            "SELECT parent_checkpoint_id, count(*) FROM checkpoints WHERE thread_id = %s AND checkpoint_ns = ''"
            " AND parent_checkpoint_id IS NOT NULL GROUP BY 1 HAVING count(*) > 1",
            (thread_id,),
        ).fetchall()


async def wait_for(predicate: Any, limit: float, what: str) -> None:
    deadline = asyncio.get_running_loop().time() + limit
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out after {limit}s waiting for {what}")
        await asyncio.sleep(0.05)


def ends(path: Path) -> int:
    return sum(1 for i in read_intervals(path) if i.how == "end")


# -- settings -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"COGNI_LEASE_SECONDS": "2", "COGNI_HEARTBEAT_SECONDS": "0.5", "COGNI_DRAIN_SECONDS": "20"}, "DRAIN"),
        ({"COGNI_LEASE_SECONDS": "10", "COGNI_HEARTBEAT_SECONDS": "2", "COGNI_DRAIN_SECONDS": "8"}, "DRAIN"),
        ({"COGNI_LEASE_SECONDS": "5", "COGNI_HEARTBEAT_SECONDS": "5", "COGNI_DRAIN_SECONDS": "0"}, "HEARTBEAT"),
    ],
)
def test_settings_refuse_a_drain_the_lease_cannot_cover(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], named: str
) -> None:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(ValidationError) as info:
        Settings()
    assert f"COGNI_{named}_SECONDS" in str(info.value) and "COGNI_LEASE_SECONDS" in str(info.value)


def test_defaults_are_consistent() -> None:
    settings = Settings()
    assert settings.drain_seconds < settings.lease_seconds - settings.heartbeat_seconds


def test_serve_exits_2_with_a_clear_message_on_inconsistent_leases() -> None:
    env = server_env(
        "postgresql://unused@127.0.0.1:1/none",
        COGNI_LEASE_SECONDS="2",
        COGNI_HEARTBEAT_SECONDS="0.5",
        COGNI_DRAIN_SECONDS="20",
    )
    done = subprocess.run(
        [sys.executable, "-m", "cogni_server", "serve", "--config", str(PROJECT)],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2, done.stderr[-2000:]
    assert "COGNI_DRAIN_SECONDS" in done.stderr and "Traceback" not in done.stderr


# -- a worker whose lease was taken ----------------------------------------------------------------


async def test_a_worker_that_lost_the_lease_stops_without_finishing(tmp_path: Path) -> None:
    record = tmp_path / "lost.log"
    env = {
        "FAULTS_RECORD_FILE": str(record),
        "COGNI_LEASE_SECONDS": "3",
        "COGNI_HEARTBEAT_SECONDS": "0.3",
        "COGNI_DRAIN_SECONDS": "1",
    }
    with fresh_database("cogni_server_core_lost") as db:
        port = free_port()
        proc = start_faults_server(db, port, name="lost-lease", **env)
        client = get_client(url=f"http://127.0.0.1:{port}", api_key=KEY_A)
        try:
            tid = (await client.threads.create())["thread_id"]
            run = await client.runs.create(tid, "recorder", input={"delay": 0.2, "steps": 40}, durability="sync")
            await wait_for(lambda: ends(record) >= 2, 20, "two steps")
            with psycopg.connect(db, autocommit=True) as conn:  # another worker takes the run over
                conn.execute(
                    "UPDATE runs SET worker_id = 'thief', lease_expires_at = now() + interval '1 hour'"
                    " WHERE run_id = %s",
                    (run["run_id"],),
                )
            taken = asyncio.get_running_loop().time()
            await asyncio.sleep(2.0)  # several heartbeats
            steps_then = len(read_intervals(record))
            await asyncio.sleep(1.5)
            intervals = read_intervals(record)
            assert len(intervals) == steps_then, "the worker kept executing a run it no longer holds"
            assert len(intervals) < 2 + 3 / 0.2, f"the run was not stopped soon after {taken}: {intervals}"
            with psycopg.connect(db) as conn:
                row = conn.execute("SELECT status, worker_id FROM runs WHERE run_id = %s", (run["run_id"],)).fetchone()
            assert row == ("running", "thief")  # not finished (nor errored) by the worker that lost it
            assert "lease is no longer ours" in proc.output()
        finally:
            await client.aclose()
            proc.stop()


# -- SIGTERM on one of two instances -------------------------------------------------------------


async def test_sigterm_hands_a_run_over_without_double_execution(tmp_path: Path) -> None:
    record = tmp_path / "drain.log"
    env = {
        "FAULTS_RECORD_FILE": str(record),
        "COGNI_LEASE_SECONDS": "2",
        "COGNI_HEARTBEAT_SECONDS": "0.4",
        "COGNI_DRAIN_SECONDS": "1.4",
        "COGNI_SWEEP_SECONDS": "0.3",
        "COGNI_POLL_SECONDS": "0.3",
    }
    steps = 12
    with fresh_database("cogni_server_core_handover") as db:
        port_a, port_b = free_port(), free_port()
        proc_a = start_faults_server(db, port_a, name="drain-a", **env)
        proc_b = start_faults_server(db, port_b, name="drain-b", **env)
        a = get_client(url=f"http://127.0.0.1:{port_a}", api_key=KEY_A)
        b = get_client(url=f"http://127.0.0.1:{port_b}", api_key=KEY_A)
        try:
            tid = (await a.threads.create())["thread_id"]
            # each step takes 0.4 s; a cancelled step needs 1 s to wind down: after SIGTERM the run
            # holds its lease for the 1.4 s drain plus 1 s, longer than the 2 s lease itself
            run = await a.runs.create(
                tid, "recorder", input={"delay": 0.4, "cleanup": 1.0, "steps": steps}, durability="sync"
            )
            await wait_for(lambda: ends(record) >= 2, 20, "two steps on A")
            assert proc_a.stop(timeout=30) is not None
            deadline = asyncio.get_running_loop().time() + 60
            while (got := await b.runs.get(tid, run["run_id"]))["status"] in ("pending", "running"):
                assert asyncio.get_running_loop().time() < deadline, got
                await asyncio.sleep(0.2)
            assert got["status"] == "success", (got, proc_b.output()[-3000:])
            intervals = read_intervals(record)
            assert_one_executor_at_a_time(intervals)
            finished = sorted(i.step for i in intervals if i.how == "end")
            assert finished == list(range(steps)), intervals  # every step completed exactly once
            assert {i.attempt for i in intervals if i.pid == proc_a.proc.pid} <= {1}
            assert forks(db, tid) == []
            state = await b.threads.get_state(tid)
            assert state["values"]["done"] == list(range(steps))
        finally:
            await a.aclose()
            await b.aclose()
            proc_a.stop()
            proc_b.stop()
