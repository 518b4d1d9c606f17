"""The opt-in tracemalloc snapshots (`cogni_server.memdiag`): off unless `COGNI_TRACEMALLOC_DIR` is set;
when set, snapshots and summary lines land there and the diff names what grew between two of them."""

from __future__ import annotations

import asyncio
import json
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cogni_server.config import Settings
from cogni_server.memdiag import diff, main, snapshot_periodically, take

KEPT: list[bytes] = []


def test_off_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("COGNI_TRACEMALLOC_DIR", raising=False)
    assert Settings().tracemalloc_dir is None
    monkeypatch.setenv("COGNI_TRACEMALLOC_DIR", "/tmp/x")
    monkeypatch.setenv("COGNI_TRACEMALLOC_FRAMES", "0")
    with pytest.raises(ValueError, match="COGNI_TRACEMALLOC_FRAMES"):
        Settings()


@pytest.fixture
def tracing() -> Iterator[None]:
    was_tracing = tracemalloc.is_tracing()
    yield
    if not was_tracing:
        tracemalloc.stop()


def summaries(directory: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for path in directory.glob("summary-*.jsonl") for line in path.read_text().splitlines()]


def test_the_diff_names_what_grew(tmp_path: Path, tracing: None, capsys: pytest.CaptureFixture[str]) -> None:
    tracemalloc.start(4)
    started = time.monotonic()
    first = take(tmp_path, started, 0)
    KEPT.extend(bytes(2000) + i.to_bytes(4, "little") for i in range(2000))  # outlives the first snapshot
    second = take(tmp_path, started, 1)
    lines = summaries(tmp_path)
    assert [line["snapshot"] for line in lines] == [first.name, second.name]
    assert lines[0]["rss_kib"] > 0 and lines[0]["top_types"] and lines[0]["malloc"]["in_use_kib"] > 0  # glibc
    assert lines[1]["traced_kib"] - lines[0]["traced_kib"] >= 3500
    top = diff(first, second, limit=3).split("\n\n")[1]
    assert "test_server_infra_memdiag.py" in top and "KEPT.extend" in top, top
    assert main([str(first), str(second), "--key", "lineno", "--limit", "1"]) == 0
    assert "test_server_infra_memdiag.py" in capsys.readouterr().out


async def test_snapshots_every_interval_after_the_delay(tmp_path: Path, tracing: None) -> None:
    task = asyncio.create_task(snapshot_periodically(tmp_path / "diag", 0.05, frames=2, delay_seconds=0.2))
    await asyncio.sleep(0.1)
    assert not summaries(tmp_path / "diag")  # still in the delay: nothing traced, nothing written
    async with asyncio.timeout(20):  # a snapshot of the test process's heap takes a while
        while len(summaries(tmp_path / "diag")) < 2:  # noqa: ASYNC110 (polling files another task writes)
            await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    lines = summaries(tmp_path / "diag")
    assert len(lines) >= 2 and lines[0]["asyncio_tasks"] >= 1 and "snapshot_periodically" in lines[0]["task_kinds"]
