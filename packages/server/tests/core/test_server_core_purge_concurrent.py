"""One tenant purged by several processes at the same moment: two server instances on one database
and one Redis (both with workers, so both run the purge sweeper) each get the operator's purge request
and ``cogni-server purge --tenant`` runs beside them, while the tenant has threads, finished and live
runs (one running on a worker and ignoring its cancellation, one queued behind it, one scheduled for
later), checkpoints, store items, crons and webhook outbox rows. One process does the work, the others
wait for it and answer with its record: every caller says ``done`` with the same counts, which are
the tenant's rows exactly (not doubled, not partial); the job took one pass; no row of the tenant is
left in any table of the catalogue, no Redis key of it; the other tenant keeps everything."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import psycopg
import pytest
import redis
from langgraph_sdk import get_client

from testsupport import ManagedProcess, free_port, fresh_database

from .conftest import KEY_A, KEY_B, server_env
from .purge_support import (
    HI,
    OPERATOR_TOKEN,
    PURGE_PROJECT,
    Known,
    redis_keys_of,
    seed_tenant,
    tenant_rows,
    wait_for,
)

REDIS_URL = os.environ.get("COGNI_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
AUTH = {"Authorization": f"Bearer {OPERATOR_TOKEN}"}
WAITING = "another process is working on it"  # what a caller logs when it waits for the owner's pass


@dataclass
class Cluster:
    database_url: str
    urls: list[str]
    processes: list[ManagedProcess]
    env: dict[str, str]


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    prefix = f"purge-conc-{uuid.uuid4().hex[:8]}"
    extra = {
        "REDIS_URL": REDIS_URL,
        "COGNI_REDIS_KEY_PREFIX": prefix,
        "COGNI_OPERATOR_TOKEN": OPERATOR_TOKEN,
        "COGNI_WEBHOOK_ALLOWED_DOMAINS": "127.0.0.1",
        "COGNI_PURGE_STOP_SECONDS": "30",  # the owner's pass waits for the held run: the others wait for it
        "COGNI_SWEEP_SECONDS": "0.5",  # both sweepers look at the unfinished purge all the time
        "COGNI_LOG_LEVEL": "info",
    }
    with fresh_database("cogni_purge_conc") as db:
        processes: list[ManagedProcess] = []
        try:
            ports = [free_port(), free_port()]
            for n, port in enumerate(ports):  # both start at once (they migrate the database together)
                args = ["serve", "--config", str(PURGE_PROJECT), "--port", str(port)]
                env = server_env(db, **extra)
                processes.append(ManagedProcess.python_module("cogni_server", *args, env=env, name=f"purge-conc-{n}"))
            for proc, port in zip(processes, ports, strict=True):
                proc.wait_http(f"http://127.0.0.1:{port}/ok", timeout=60)
            yield Cluster(db, [f"http://127.0.0.1:{p}" for p in ports], processes, server_env(db, **extra))
        finally:
            for proc in processes:
                proc.stop()
            client = redis.Redis.from_url(REDIS_URL)
            keys = list(client.scan_iter(match=f"{prefix}:*"))
            if keys:
                client.delete(*keys)
            client.close()


async def _purge(url: str) -> httpx.Response:
    async with httpx.AsyncClient(timeout=120) as http:
        return await http.post(f"{url}/admin/tenants/tenant-a/purge", headers=AUTH)


async def test_concurrent_purges_of_one_tenant_do_the_work_once_and_answer_alike(
    cluster: Cluster, tmp_path: Path
) -> None:
    hook = f"http://127.0.0.1:{free_port()}/hook"  # nobody listens: the outbox rows stay
    a1, a2 = get_client(url=cluster.urls[0], api_key=KEY_A), get_client(url=cluster.urls[1], api_key=KEY_A)
    b = get_client(url=cluster.urls[1], api_key=KEY_B)
    try:
        await seed_tenant(a1, "a", hook)
        await seed_tenant(b, "b", hook)
        # live runs: one running that ignores its cancellation until released, one queued behind it,
        # one scheduled for an hour from now
        release = tmp_path / "release"
        held_thread = (await a2.threads.create())["thread_id"]
        await a2.runs.create(held_thread, "held", input={"release": str(release)})
        await asyncio.to_thread(wait_for, Path(f"{release}.started").exists, "the held run to start")
        await a1.runs.create(held_thread, "echo", input=HI, multitask_strategy="enqueue")
        later_thread = (await a1.threads.create())["thread_id"]
        await a1.runs.create(later_thread, "echo", input=HI, after_seconds=3600)
    finally:
        for client in (a1, a2, b):
            await client.aclose()
    with psycopg.connect(cluster.database_url, autocommit=True) as conn:
        statuses = sorted(r[0] for r in conn.execute("SELECT status FROM runs WHERE owner = 'tenant-a'"))
        assert statuses.count("running") == 1 and statuses.count("pending") == 2, statuses
        known_a, known_b = Known("tenant-a").refresh(conn), Known("tenant-b").refresh(conn)
        before_a, before_b = tenant_rows(conn, known_a), tenant_rows(conn, known_b)
    prefix = cluster.env["COGNI_REDIS_KEY_PREFIX"]
    assert redis_keys_of(REDIS_URL, prefix, known_a), "tenant-a's runs left no Redis keys to purge"

    # at the same moment: the route on both instances and the CLI (the sweepers join on their own)
    cli_err = (tmp_path / "cli.err").open("wb")
    cli = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "cogni_server", "purge", "--tenant", "tenant-a", "--config", str(PURGE_PROJECT),
        env={**os.environ, **cluster.env}, stdout=asyncio.subprocess.PIPE, stderr=cli_err,
    )  # fmt: skip
    routes = [asyncio.ensure_future(_purge(url)) for url in cluster.urls]
    cli_out = asyncio.ensure_future(cli.communicate())
    try:

        def waiters() -> bool:
            logs = [proc.output() for proc in cluster.processes] + [(tmp_path / "cli.err").read_text(errors="replace")]
            return sum(log.count(WAITING) for log in logs) >= 2 or any(r.done() for r in routes)

        # one of the three works (its pass waits for the held run), the other two wait for it
        await asyncio.to_thread(wait_for, waiters, "two callers to wait for the third's purge pass", 45.0)
        assert not any(r.done() for r in routes), [r.result().json() for r in routes if r.done()]
        release.touch()  # the held run ends: the owner's pass finishes
        responses = await asyncio.wait_for(asyncio.gather(*routes), 60)
        stdout, _ = await asyncio.wait_for(cli_out, 60)
    finally:
        release.touch()
        cli_err.close()
        if cli.returncode is None:
            cli.kill()
    cli_log = (tmp_path / "cli.err").read_text(errors="replace")
    assert cli.returncode == 0, cli_log
    answers = [r.json() for r in responses] + [json.loads(stdout.decode().strip().splitlines()[-1])]
    assert [r.status_code for r in responses] == [200, 200], [r.text for r in responses]
    assert [a["status"] for a in answers] == ["done"] * 3, answers
    assert answers[0] == answers[1] == answers[2], "the callers answered different records"
    counts = answers[0]["counts"]
    assert {t: counts[t] for t in before_a} == before_a, "the counts are not the tenant's rows exactly"

    with psycopg.connect(cluster.database_url, autocommit=True) as conn:
        job = conn.execute("SELECT status, passes FROM tenant_purges WHERE tenant = 'tenant-a'").fetchone()
        assert job == ("done", 1), f"the work was not done once: {job}"
        after_a, after_b = tenant_rows(conn, known_a.refresh(conn)), tenant_rows(conn, known_b)
    assert after_a == dict.fromkeys(before_a, 0), f"rows of the purged tenant remain: {after_a}"
    assert after_b == before_b, "the other tenant's rows changed"
    assert redis_keys_of(REDIS_URL, prefix, known_a) == []
    for proc in cluster.processes:
        assert "Traceback" not in proc.output() and "deadlock" not in proc.output().lower()
    assert "Traceback" not in cli_log
