"""The faults, one kind per batch, each injected while the batch's chats are in flight.

A fault is an async function `(topology, batch) -> None` run next to the chats. It waits until the
batch is really running (a server run of the batch is `running`, or the app is streaming), strikes,
and brings the topology back whole (a killed process is started again), so the next batch starts
from a healthy system. Blocking process control runs in a thread so the chats keep going.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import psycopg

from bench.chaos.topology import Topology
from bench.chaos.traffic import Chat

RUNNING_WORKERS = "SELECT worker_id FROM runs WHERE thread_id = ANY(%s::uuid[]) AND status = 'running'"


@dataclass
class Batch:
    """What a fault needs to know about the batch it strikes."""

    fault: str
    account_id: str
    thread_ids: list[str]
    chats: list[Chat]
    notes: list[str] = field(default_factory=list)


Fault = Callable[[Topology, Batch], Awaitable[None]]


async def running_workers(topology: Topology, batch: Batch, within: float = 30.0) -> list[str]:
    """Worker ids executing runs of the batch, once at least one is running ([] after `within` s)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            async with await psycopg.AsyncConnection.connect(topology.server_db, connect_timeout=3) as conn:
                rows = await (await conn.execute(RUNNING_WORKERS, (batch.thread_ids,))).fetchall()
            workers = [r[0] for r in rows if r[0]]
            if workers:
                return workers
        except psycopg.Error:
            pass
        await asyncio.sleep(0.1)
    return []


def pid_of_worker(worker_id: str) -> int | None:
    """Worker ids are `host:pid:random` (cogni_server.runs.worker)."""
    parts = worker_id.split(":")
    return int(parts[1]) if len(parts) >= 3 and parts[1].isdigit() else None


async def instance_running_the_batch(topology: Topology, batch: Batch) -> int | None:
    """Index of the server instance executing most of the batch's running runs."""
    workers = await running_workers(topology, batch)
    counts: dict[int, int] = {}
    for worker in workers:
        pid = pid_of_worker(worker)
        index = topology.server_index_of_pid(pid) if pid is not None else None
        if index is not None:
            counts[index] = counts.get(index, 0) + 1
    if not counts:
        batch.notes.append("no running run found to strike")
        return None
    return max(counts, key=lambda i: counts[i])


async def settle_mid_run(seconds: float = 0.6) -> None:
    """Let the runs get into their LLM calls before striking."""
    await asyncio.sleep(seconds)


async def until_streaming(batch: Batch, within: float = 30.0) -> None:
    """Until a chat of the batch has its first event (or `within` seconds), then a moment more."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline and not any(c.first_event_at for c in batch.chats):  # noqa: ASYNC110
        await asyncio.sleep(0.05)  # the chats set first_event_at from another task: polling is simplest
    await settle_mid_run(0.3)


async def kill9_runner(topology: Topology, batch: Batch) -> None:
    index = await instance_running_the_batch(topology, batch)
    if index is None:
        return
    await settle_mid_run()
    await asyncio.to_thread(topology.kill_server, index)
    batch.notes.append(f"kill -9 server{index}")
    await asyncio.sleep(1.0)
    await asyncio.to_thread(topology.start_server, index)


async def sigterm_runner(topology: Topology, batch: Batch) -> None:
    index = await instance_running_the_batch(topology, batch)
    if index is None:
        return
    await settle_mid_run()
    started = time.monotonic()
    status = await asyncio.to_thread(topology.terminate_server, index)
    batch.notes.append(f"SIGTERM server{index}: exit {status} after {time.monotonic() - started:.1f}s")
    await asyncio.to_thread(topology.start_server, index)


async def postgres_restart(topology: Topology, batch: Batch) -> None:
    if not await running_workers(topology, batch):
        batch.notes.append("no running run found to strike")
    await settle_mid_run()
    await asyncio.to_thread(topology.stop_postgres)
    await asyncio.sleep(1.0)
    await asyncio.to_thread(topology.start_postgres)
    batch.notes.append("postgres stopped (fast) and started")


async def redis_restart(topology: Topology, batch: Batch) -> None:
    if not await running_workers(topology, batch):
        batch.notes.append("no running run found to strike")
    await settle_mid_run()
    await asyncio.to_thread(topology.kill_redis)
    await asyncio.sleep(1.0)
    await asyncio.to_thread(topology.start_redis)
    batch.notes.append("redis killed (-9) and started empty")


async def litellm_restart(topology: Topology, batch: Batch) -> None:
    if not await running_workers(topology, batch):
        batch.notes.append("no running run found to strike")
    await settle_mid_run()
    await asyncio.to_thread(topology.kill_litellm)
    started = time.monotonic()
    await asyncio.to_thread(topology.start_litellm)
    batch.notes.append(f"litellm killed (-9), back after {time.monotonic() - started:.1f}s")


async def app_kill(topology: Topology, batch: Batch) -> None:
    await until_streaming(batch)
    await asyncio.to_thread(topology.kill_app)
    killed = time.monotonic()
    await asyncio.sleep(0.5)
    await asyncio.to_thread(topology.start_app)  # returns once /healthz answers: its first sweep has started
    batch.notes.append(f"app killed (-9) mid-stream, serving again after {time.monotonic() - killed:.1f}s")


async def billing_worker_kill(topology: Topology, batch: Batch) -> None:
    """The app and the billing worker both die: the app mid-stream (its interrupted calls are billed
    only by a reconcile), then the worker while it sweeps them (it sweeps every second), and each
    comes back. Nothing may be charged twice by the sweep that the kill cut short, nor lost."""
    await until_streaming(batch)
    await asyncio.to_thread(topology.kill_app)
    await asyncio.sleep(1.2)  # the worker's next sweep finds the app's unbilled calls
    await asyncio.to_thread(topology.kill_billing_worker)
    killed = time.monotonic()
    await asyncio.to_thread(topology.start_app)
    await asyncio.to_thread(topology.start_billing_worker)
    back = time.monotonic() - killed
    batch.notes.append(f"app killed (-9) mid-stream, billing worker killed (-9) 1.2s later, back after {back:.1f}s")


def balancer_mode(mode: str) -> Fault:
    async def tamper(topology: Topology, batch: Batch) -> None:
        assert topology.balancer is not None
        topology.balancer.set_mode(mode)  # reset to "pass" by the campaign once the batch is done

    return tamper


async def nothing(topology: Topology, batch: Batch) -> None:
    """Client disconnects are planned into the chats themselves (bench/chaos/traffic.py)."""


FAULTS: dict[str, Fault] = {
    "kill9-runner": kill9_runner,
    "sigterm-runner": sigterm_runner,
    "postgres-restart": postgres_restart,
    "redis-restart": redis_restart,
    "litellm-restart": litellm_restart,
    "client-disconnect": nothing,
    "usage-dropped": balancer_mode("drop"),
    "usage-duplicated": balancer_mode("duplicate"),
    "app-kill": app_kill,
    "billing-worker-kill": billing_worker_kill,
}
