"""The soak mode of the bench: its growth arithmetic, its arguments, and a tiny real soak of our server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench import soak

ROOT = Path(__file__).resolve().parents[2]


def test_growth_counts_from_the_first_sample_after_warm_up() -> None:
    samples = [
        {"t_min": 0.0, "rss_mib": 100.0, "fds": 20},
        {"t_min": 1.0, "rss_mib": 400.0, "fds": 30},  # warming up: caches, pools, broker retention
        {"t_min": 2.0, "rss_mib": 500.0, "fds": 31},
        {"t_min": 3.0, "rss_mib": 510.0, "fds": 31},
        {"t_min": 4.0, "rss_mib": 530.0, "fds": 33},
    ]
    g = soak.growth(samples, warmup_min=2.0)
    assert (g["baseline_rss_mib"], g["last_rss_mib"], g["rss_growth_pct"]) == (500.0, 530.0, 6.0)
    assert g["fd_growth"] == 2 and g["peak_rss_mib"] == 530.0
    assert g["rss_target_met"] is False
    assert soak.growth(samples[:4], warmup_min=2.0)["rss_target_met"] is True  # +2%


def test_soak_arguments_are_checked() -> None:
    assert soak.parse_args(["--minutes", "10", "--warmup-minutes", "3"]).clients == 8
    for bad in (["--minutes", "0"], ["--minutes", "5", "--warmup-minutes", "5"], ["--clients", "0"]):
        with pytest.raises(SystemExit):
            soak.parse_args(bad)


def test_open_fds_of_this_process_are_counted() -> None:
    count = soak.open_fds(os.getpid())
    assert count is not None and count >= 3
    assert soak.open_fds(2**22 + 12345) is None  # no such process


@pytest.mark.integration
def test_a_short_soak_of_our_server_samples_memory_and_fds_and_serves_every_kind_of_traffic(tmp_path: Path) -> None:
    out = tmp_path / "soak.json"
    args = ["soak", "--minutes", "0.3", "--warmup-minutes", "0.1", "--sample-seconds", "6", "--clients", "3",
            "--tokens", "20", "--out", str(out)]  # fmt: skip
    proc = subprocess.run(
        [sys.executable, "-m", "bench", *args], cwd=ROOT, capture_output=True, text=True, timeout=240, check=False
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    result = json.loads(out.read_text())["result"]
    assert result["failures"] == 0, result["errors"]
    assert len(result["samples"]) >= 3 and all(s["rss_mib"] > 0 and s["fds"] > 0 for s in result["samples"])
    assert set(result["operations"]) == set(soak.KINDS)
    assert result["growth"]["rss_growth_pct"] is not None
