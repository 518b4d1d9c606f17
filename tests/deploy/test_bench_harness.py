"""The benchmark harness: its arithmetic, its loopback guard, and one tiny real run of `python -m bench`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench import report, run, servers
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
def test_one_command_measures_our_server(tmp_path: Path) -> None:
    """A tiny run of the real command: our server on a fresh database, the mock model, all three measures."""
    out = tmp_path / "bench.json"
    args = ["--runs", "5", "--warmup", "1", "--clients", "2", "--runs-per-client", "2"]
    args += ["--tokens", "30", "--token-runs", "1", "--out", str(out)]
    proc = subprocess.run(
        [sys.executable, "-m", "bench", *args], cwd=ROOT, capture_output=True, text=True, timeout=240, check=False
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    result = json.loads(out.read_text())
    (ours,) = result["results"]
    assert ours["name"] == "ours" and ours["details"]["storage"].startswith("postgres")
    assert ours["sequential"]["runs"] == 5 and ours["sequential"]["failures"] == 0
    assert ours["sequential"]["median_ms"] > 0 and ours["sequential"]["p99_ms"] >= ours["sequential"]["median_ms"]
    assert ours["concurrent"]["runs"] == 4 and ours["concurrent"]["runs_per_s"] > 0
    assert ours["tokens"]["tokens"] == 30 and ours["tokens"]["tokens_per_s"] > 0
    assert result["machine"]["cores"] and result["command"].startswith("uv run python -m bench")
    assert "ours" in proc.stdout and "median ms" in proc.stdout
