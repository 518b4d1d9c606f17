"""The benchmark harness: its arithmetic, its loopback guard, and tiny real runs of `python -m bench`
(ours and the in-process floor) and of `python -m bench capacity`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bench import capacity, peers, procmem, redisdb, report, run, servers
from bench.stats import percentile, ratio, summary

ROOT = Path(__file__).resolve().parents[2]


def test_percentile_is_nearest_rank() -> None:
    samples = [float(i) for i in range(1, 201)]  # 1..200
    assert percentile(samples, 50) == 100.0
    assert percentile(samples, 99) == 198.0
    assert percentile(samples, 100) == 200.0
    assert percentile([7.0], 99) == 7.0
    with pytest.raises(ValueError):
        percentile([], 50)


def test_summary_reports_median_and_p99() -> None:
    stats = summary([10.0, 20.0, 30.0, 1000.0])
    assert stats["median_ms"] == 25.0
    assert stats["p99_ms"] == 1000.0
    assert stats["min_ms"] == 10.0


def test_ratios_say_how_many_times_better_the_reference_is() -> None:
    results = [
        {"name": "ours", "sequential": {"median_ms": 10.0, "p99_ms": 20.0}, "concurrent": {"runs_per_s": 100.0}},
        {"name": "peer", "sequential": {"median_ms": 150.0, "p99_ms": 200.0}, "concurrent": {"runs_per_s": 25.0}},
    ]
    ratios = report.ratios(results, "ours")
    assert ratios["peer"]["sequential_median"] == 15.0  # latency: peer / ours
    assert ratios["peer"]["concurrent_runs_per_s"] == 4.0  # rate: ours / peer
    assert ratios["peer"]["tokens_per_s"] is None  # not measured on either side
    assert ratio(1.0, 0.0) is None


@pytest.mark.parametrize("url", ["http://10.0.0.5:8000", "http://example.com", "http://192.168.1.2:2024"])
def test_bench_refuses_non_loopback_targets(url: str) -> None:
    with pytest.raises(ValueError, match="loopback"):
        servers.require_loopback(url)
    with pytest.raises(ValueError, match="loopback"):
        run.parse_peer(f"peer={url}")


def test_bench_accepts_loopback_targets() -> None:
    assert servers.require_loopback("http://127.0.0.1:9/") == "http://127.0.0.1:9"
    assert servers.require_loopback("http://localhost:9") == "http://localhost:9"
    assert run.parse_peer("aegra=http://[::1]:8000") == ("aegra", "http://[::1]:8000")


def test_absolute_config_keeps_the_graphs_loadable_from_any_directory(tmp_path: Path) -> None:
    config = json.loads(servers.absolute_config(tmp_path).read_text())
    for spec in config["graphs"].values():
        path, _, variable = spec.partition(":")
        assert Path(path).is_absolute() and Path(path).exists() and variable == "graph"
    assert set(config["graphs"]) == {"trivial", "llm"}


@pytest.mark.integration
def test_one_command_measures_our_server_and_the_floor(tmp_path: Path) -> None:
    """A tiny run of the real command: our server on a fresh database, the floor (in-process and behind
    HTTP), the mock model."""
    out = tmp_path / "bench.json"
    args = ["--runs", "5", "--warmup", "1", "--clients", "2", "--runs-per-client", "2", "--tokens", "30"]
    args += ["--token-runs", "1", "--start", "floor", "--start", "floor-http", "--out", str(out)]
    proc = subprocess.run(
        [sys.executable, "-m", "bench", *args], cwd=ROOT, capture_output=True, text=True, timeout=240, check=False
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    result = json.loads(out.read_text())
    ours, floor, floor_http = result["results"]
    assert ours["name"] == "ours" and ours["details"]["storage"].startswith("postgres")
    assert ours["sequential"]["runs"] == 5 and ours["sequential"]["failures"] == 0
    assert ours["sequential"]["median_ms"] > 0 and ours["sequential"]["p99_ms"] >= ours["sequential"]["median_ms"]
    assert ours["concurrent"]["runs"] == 4 and ours["concurrent"]["runs_per_s"] > 0
    assert ours["tokens"]["tokens"] == 30 and ours["tokens"]["tokens_per_s"] > 0
    assert "served" in ours["thread_stream"]  # measured where served, "n/a" with a note where not
    assert floor["name"] == "floor" and floor["kind"] == "in-process floor"
    assert (
        floor["details"]["checkpointer"].startswith("PooledPostgresSaver") and floor["details"]["durability"] == "async"
    )
    assert floor["sequential"]["runs"] == 5 and floor["sequential"]["failures"] == 0
    assert floor["concurrent"]["runs"] == 4 and floor["tokens"]["tokens"] == 30
    assert floor["thread_stream"] == {"served": False, "note": "no server: nothing serves the thread-streaming API"}
    # the floor behind the official client's three requests: every run checked like a server's
    assert floor_http["name"] == "floor-http" and floor_http["kind"] == "floor behind HTTP"
    assert floor_http["sequential"]["runs"] == 5 and floor_http["sequential"]["failures"] == 0
    assert floor_http["concurrent"]["runs"] == 4 and floor_http["tokens"]["tokens"] == 30
    assert floor_http["thread_stream"]["served"] is False and "404" in floor_http["thread_stream"]["note"]
    assert result["ratios"]["floor"]["sequential_median"] is not None
    assert result["floor_ratios"]["ours"]["sequential_median"] is not None
    assert result["floor_ratios"]["floor-http"]["sequential_median"] is not None
    assert result["machine"]["cores"] and result["command"].startswith("uv run python -m bench")
    assert "ours" in proc.stdout and "median ms" in proc.stdout and "overhead over the floor" in proc.stdout


# -- issue 9: today's peers, the floor, thread streaming, capacity -------------------------------


def test_ratios_to_ours_and_to_the_floor_in_the_same_run() -> None:
    results: list[dict[str, Any]] = [
        {
            "name": "ours",
            "sequential": {"median_ms": 8.0, "p99_ms": 12.0},
            "concurrent": {"runs_per_s": 160.0},
            "tokens": {"tokens_per_s": 12000.0, "ttft_median_ms": 60.0},
            "thread_stream": {"served": False, "note": "404"},
        },
        {
            "name": "langhost",
            "sequential": {"median_ms": 240.0, "p99_ms": 300.0},
            "concurrent": {"runs_per_s": 40.0},
            "tokens": {"tokens_per_s": 1200.0, "ttft_median_ms": 240.0},
            "thread_stream": {"served": True, "ttfe_median_ms": 250.0, "events_per_s": 320.0},
        },
        {
            "name": "floor",
            "sequential": {"median_ms": 4.0, "p99_ms": 6.0},
            "concurrent": {"runs_per_s": 320.0},
            "tokens": {"tokens_per_s": 24000.0, "ttft_median_ms": 30.0},
            "thread_stream": {"served": False, "note": "no server"},
        },
        {"name": "broken", "error": "RuntimeError: did not come up"},
    ]
    to_ours = report.ratios(results, "ours")
    assert to_ours["langhost"]["sequential_median"] == 30.0  # latency: target / ours
    assert to_ours["langhost"]["concurrent_runs_per_s"] == 4.0  # rate: ours / target
    assert to_ours["langhost"]["ttft"] == 4.0
    assert to_ours["langhost"]["thread_stream_events_per_s"] is None  # ours does not serve it yet
    assert "broken" not in to_ours
    to_floor = report.ratios(results, "floor")
    assert to_floor["ours"]["sequential_median"] == 2.0  # ours takes twice the floor's time
    assert to_floor["ours"]["concurrent_runs_per_s"] == 2.0  # the floor runs twice as many per second
    assert to_floor["ours"]["tokens_per_s"] == 2.0
    assert to_floor["langhost"]["sequential_median"] == 60.0
    assert report.ratios(results, "absent") == {}

    full: dict[str, Any] = {"params": {"clients": 32}, "reference": "ours", "results": results}
    full.update(ratios=to_ours, floor_ratios=to_floor)
    text = report.table(full)
    assert "overhead over the floor" in text and "n/a" in text and "FAILED" in text
    md = report.markdown(full)
    assert "| ours | 8.00 | 12.0 | 0 | 160.0 |" in md and "| langhost | 30.0x |" in md


@pytest.mark.integration
def test_phases_time_the_clients_three_requests_against_ours_and_floor_http() -> None:
    """`python -m bench phases`: both targets started, every phase timed, ours beside floor-http."""
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "phases", "--runs", "5", "--warmup", "1"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    rows = {line.split("|")[1].strip(): line for line in proc.stdout.splitlines() if line.startswith("| ")}
    assert rows["phase (median ms)"].split("|")[2:4] == [" ours ", " floor-http "]
    for phase in ("create", "stream headers", "first values", "to the check", "check", "total"):
        ours, floor_http, _diff = (cell.strip() for cell in rows[phase].split("|")[2:5])
        assert float(ours) > 0 and float(floor_http) > 0, rows[phase]
    for column in (2, 3):  # each run's total holds each of its phases, so the medians keep that order
        total = float(rows["total"].split("|")[column])
        assert all(float(rows[p].split("|")[column]) <= total for p in ("create", "first values", "check"))


def test_bench_arguments_name_todays_peers_and_the_floor() -> None:
    args = run.parse_args(["--start", "langhost", "--start", "aegra011", "--start", "floor", "--only", "thread-stream"])
    assert [name for name, _ in run.plan(args)] == ["ours", "langhost", "aegra011", "floor"]
    assert args.floor_saver == "pooled" and args.only == ["thread-stream"]
    assert {"langhost", "aegra011", "langgraph-dev", "aegra", "floor", "floor-http"} <= set(run.start_choices())
    with pytest.raises(SystemExit):
        run.parse_args(["--start", "floor", "--start", "floor"])
    with pytest.raises(SystemExit):
        run.parse_args(["--start", "nonexistent"])
    assert run.section("thread-stream") == "thread_stream"


def test_capacity_arguments_and_targets() -> None:
    args = capacity.parse_args(["--streams", "2000", "--transport", "sse"])
    assert args.streams == 2000 and args.transport == ["sse"] and args.target == "ours"
    assert capacity.parse_args([]).transport is None  # both, one after the other
    with pytest.raises(SystemExit):
        capacity.parse_args(["--streams", "0"])
    with pytest.raises(SystemExit):
        capacity.parse_args(["--target", "langhost", "--ours-redis", "redis://127.0.0.1:6379/15"])
    with pytest.raises(ValueError, match="loopback"):
        capacity.parse_args(["--ours-redis", "redis://10.1.2.3:6379/1"])
    assert capacity.parse_args(["--ours-redis", "auto"]).ours_redis == "auto"
    idle = {"start": {"median_ms": 10.0, "p99_ms": 20.0}, "run": {"median_ms": 12.0, "p99_ms": 30.0}}
    loaded = {"start": {"median_ms": 15.0, "p99_ms": 50.0}, "run": {"median_ms": 24.0, "p99_ms": 30.0}}
    factors = capacity.latency_factors(idle, loaded)
    assert factors == {"start_median": 1.5, "start_p99": 2.5, "run_median": 2.0, "run_p99": 1.0}
    meets = capacity.verdict(900 * 1024, 2000, 2000, factors)
    assert meets == {"all_streams_open": True, "rss_under_1gb": True, "start_under_2x_idle": True}
    assert capacity.verdict(1000 * 1024, 1999, 2000, {"start_median": 2.0}) == {
        "all_streams_open": False,
        "rss_under_1gb": False,  # 1000 MiB is more than 1 GB (10^9 bytes)
        "start_under_2x_idle": False,
    }


def test_process_tree_memory_counts_the_children_in_the_session() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"], start_new_session=True)
    try:
        pids = procmem.tree_pids(child.pid)
        assert pids == [child.pid]
        alone = procmem.tree_rss_kib(child.pid)
        assert alone is not None and alone > 1000  # a Python interpreter is more than 1 MiB
    finally:
        child.kill()
        child.wait()
    assert procmem.tree_rss_kib(child.pid) is None  # gone


def test_peer_python_is_found_or_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert peers.PEERS["aegra011"].python == "3.12" and peers.PEERS["langhost"].python == "3.11"
    assert peers.python_env_var("3.12") == "COGNI_PEER_PYTHON312"
    mine = f"{sys.version_info.major}.{sys.version_info.minor}"
    monkeypatch.setenv(peers.python_env_var(mine), sys.executable)
    assert peers.find_python(mine) == sys.executable
    monkeypatch.setenv(peers.python_env_var("3.99"), sys.executable)
    with pytest.raises(RuntimeError, match=r"not a working Python 3\.99"):
        peers.find_python("3.99")
    monkeypatch.delenv(peers.python_env_var("3.99"))
    with pytest.raises(RuntimeError, match="COGNI_PEER_PYTHON399"):
        peers.find_python("3.99", pyenv_root=tmp_path, path=str(tmp_path))
    fake = tmp_path / "versions" / f"{mine}.0" / "bin"
    fake.mkdir(parents=True)
    (fake / f"python{mine}").symlink_to(sys.executable)
    monkeypatch.delenv(peers.python_env_var(mine))
    assert peers.find_python(mine, pyenv_root=tmp_path, path=str(tmp_path)) == str(fake / f"python{mine}")
    # a peer on another Python gets its own venv, never one built for ours
    assert peers.venv_dir(peers.PEERS["aegra011"]).name.startswith("aegra011-")
    assert redisdb.redis_url(7, "redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/7"


@pytest.mark.integration
def test_redis_connections_are_counted_on_the_database_index() -> None:
    """The capacity bench's connection count: a client on the index is counted, one elsewhere is not."""
    import redis

    with redisdb.fresh_redis_database() as url:
        before = redisdb.connections_on(url)
        assert before is not None
        here = redis.Redis.from_url(url)
        elsewhere = redis.Redis.from_url(redisdb.redis_url(0, url))
        try:
            here.ping()
            elsewhere.ping()
            assert redisdb.connections_on(url) == before + 1
        finally:
            here.close()
            elsewhere.close()


@pytest.mark.integration
def test_capacity_opens_idle_streams_against_our_server(tmp_path: Path) -> None:
    """A tiny real capacity run: 20 idle SSE streams on ours, memory read, latency idle and loaded."""
    out = tmp_path / "capacity.json"
    args = ["capacity", "--streams", "20", "--runs", "3", "--warmup", "1", "--settle", "0.5", "--out", str(out)]
    proc = subprocess.run(
        [sys.executable, "-m", "bench", *args], cwd=ROOT, capture_output=True, text=True, timeout=240, check=False
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    result = json.loads(out.read_text())["result"]
    sse = result["sse"]
    assert sse["streams_opened"] == 20 and sse["open_failures"] == 0
    assert sse["still_open_at_rss"] == 20 and sse["still_open_after_runs"] == 20
    assert sse["rss_mib"]["open"] > 0 and sse["latency_open"]["runs"] == 3
    assert result["latency_idle"]["start"]["median_ms"] > 0
    assert "websocket" in result  # measured, or n/a with a note while we do not serve it
    assert result["websocket"].get("served") is not None or result["websocket"].get("error") is None
