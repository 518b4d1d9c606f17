"""Queue gauges on ``/metrics``: an API-only process (``--no-workers``) accepts runs nobody executes,
so ``cogni_run_queue_depth`` counts them and ``cogni_run_queue_oldest_age_seconds`` grows; a run
delayed by ``after_seconds`` is not due and is not counted. Once a workers-only process joins, the
runs execute and both gauges fall back to 0, on every process (they are global, read from Postgres)."""

from __future__ import annotations

import asyncio
import re
import time

import httpx
from langgraph_sdk import get_client

from testsupport import ManagedProcess, free_port, fresh_database

from .conftest import KEY_A, start_server


async def gauges(base_url: str) -> tuple[float, float]:
    async with httpx.AsyncClient(timeout=10) as http:
        text = (await http.get(f"{base_url}/metrics")).text

    def value(name: str) -> float:
        match = re.search(rf"^{name} (\S+)$", text, re.MULTILINE)
        assert match, f"{name} missing from /metrics"
        return float(match.group(1))

    return value("cogni_run_queue_depth"), value("cogni_run_queue_oldest_age_seconds")


async def wait_gauges(base_url: str, depth: float, limit: float = 30.0) -> tuple[float, float]:
    """Scrape until the depth is ``depth`` (samples are cached for ~2 s per process)."""
    deadline = time.monotonic() + limit
    while True:
        seen = await gauges(base_url)
        if seen[0] == depth or time.monotonic() > deadline:
            return seen
        await asyncio.sleep(0.3)


async def test_queue_depth_and_age_track_runs_nobody_executes() -> None:
    with fresh_database("cogni_server_core_queue_metrics") as db:
        api_proc: ManagedProcess | None = None
        worker_proc: ManagedProcess | None = None
        try:
            api_port = free_port()
            api_proc = start_server(db, api_port, "--no-workers", name="api-no-workers")
            api_url = f"http://127.0.0.1:{api_port}"
            assert await gauges(api_url) == (0.0, 0.0)

            client = get_client(url=api_url, api_key=KEY_A)
            try:
                queued = []
                for _ in range(3):
                    tid = (await client.threads.create())["thread_id"]
                    run = await client.runs.create(tid, "echo", input={"messages": []})
                    queued.append((tid, run["run_id"]))
                later_tid = (await client.threads.create())["thread_id"]
                later = await client.runs.create(later_tid, "echo", input={"messages": []}, after_seconds=600)
                await asyncio.sleep(2.1)  # let the runs age and the first (0, 0) sample expire

                depth, age = await wait_gauges(api_url, 3)
                assert depth == 3  # the delayed run is pending but not due
                assert 2.0 <= age < 60
                for tid, run_id in queued:
                    assert (await client.runs.get(tid, run_id))["status"] == "pending"
                assert (await client.runs.get(later_tid, later["run_id"]))["status"] == "pending"

                worker_port = free_port()
                worker_proc = start_server(db, worker_port, "--workers-only", name="workers-only")
                for tid, run_id in queued:
                    await asyncio.wait_for(client.runs.join(tid, run_id), 30)
                    assert (await client.runs.get(tid, run_id))["status"] == "success"

                assert await wait_gauges(api_url, 0) == (0.0, 0.0)
                assert await wait_gauges(f"http://127.0.0.1:{worker_port}", 0) == (0.0, 0.0)
                assert (await client.runs.get(later_tid, later["run_id"]))["status"] == "pending"
            finally:
                await client.aclose()
        finally:
            for proc in (worker_proc, api_proc):
                if proc is not None:
                    proc.stop()
