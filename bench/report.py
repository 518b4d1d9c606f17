"""What the bench prints and saves: the machine, the figures per target, and ratios to the reference."""

from __future__ import annotations

import json
import os
import platform
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.stats import ratio

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def machine() -> dict[str, Any]:
    """CPU model, cores, memory, OS, Python and the git commit the bench ran on."""
    info: dict[str, Any] = {
        "cores": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
    }
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        models = [line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines() if "model name" in line]
        info["cpu"] = models[0] if models else "unknown"
    meminfo = Path("/proc/meminfo")
    if meminfo.exists():
        first = meminfo.read_text().splitlines()[0].split()
        info["memory_gib"] = round(int(first[1]) / 1024 / 1024, 1)
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain"], capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        info["git_commit"] = commit + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        info["git_commit"] = "unknown"
    return info


def _get(result: dict[str, Any], section: str, key: str) -> float | None:
    value = (result.get(section) or {}).get(key)
    return float(value) if isinstance(value, int | float) else None


def ratios(results: list[dict[str, Any]], reference: str) -> dict[str, dict[str, float | None]]:
    """For every other target: how many times better the reference is (>1 means the reference wins).

    Latencies: target / reference. Rates (runs/s, tokens/s): reference / target.
    """
    ref = next((r for r in results if r["name"] == reference), None)
    if ref is None:
        return {}
    out: dict[str, dict[str, float | None]] = {}
    for result in results:
        if result["name"] == reference:
            continue
        out[result["name"]] = {
            "sequential_median": ratio(_get(result, "sequential", "median_ms"), _get(ref, "sequential", "median_ms")),
            "sequential_p99": ratio(_get(result, "sequential", "p99_ms"), _get(ref, "sequential", "p99_ms")),
            "concurrent_runs_per_s": ratio(
                _get(ref, "concurrent", "runs_per_s"), _get(result, "concurrent", "runs_per_s")
            ),
            "tokens_per_s": ratio(_get(ref, "tokens", "tokens_per_s"), _get(result, "tokens", "tokens_per_s")),
            "stream_tokens_per_s": ratio(
                _get(ref, "tokens", "stream_tokens_per_s"), _get(result, "tokens", "stream_tokens_per_s")
            ),
        }
    return out


def _fmt(value: float | None, suffix: str = "") -> str:
    if value is None:
        return "-"
    return f"{value:,.1f}{suffix}" if value >= 10 else f"{value:,.2f}{suffix}"


def table(report: dict[str, Any]) -> str:
    """A plain-text table: one row per target, then the ratios to the reference."""
    params = report["params"]
    head = (
        f"{'server':<16}{'median ms':>11}{'p99 ms':>10}{'fail':>6}"
        f"{'runs/s@' + str(params['clients']):>12}{'tok/s':>10}{'stream tok/s':>14}{'ttft ms':>10}"
    )
    lines = [head, "-" * len(head)]
    for r in report["results"]:
        if r.get("error"):
            lines.append(f"{r['name']:<16}  FAILED: {r['error']}")
            continue
        failures = sum(int((r.get(s) or {}).get("failures", 0)) for s in ("sequential", "concurrent", "tokens"))
        lines.append(
            f"{r['name']:<16}{_fmt(_get(r, 'sequential', 'median_ms')):>11}{_fmt(_get(r, 'sequential', 'p99_ms')):>10}"
            f"{failures:>6}{_fmt(_get(r, 'concurrent', 'runs_per_s')):>12}"
            f"{_fmt(_get(r, 'tokens', 'tokens_per_s')):>10}{_fmt(_get(r, 'tokens', 'stream_tokens_per_s')):>14}"
            f"{_fmt(_get(r, 'tokens', 'ttft_median_ms')):>10}"
        )
    ref = report["reference"]
    if report["ratios"]:
        lines += ["", f"{ref} is N times better than (same run; latency: peer/{ref}, rates: {ref}/peer):"]
        for name, rs in report["ratios"].items():
            lines.append(
                f"  vs {name:<14} median {_fmt(rs['sequential_median'], 'x')}, p99 {_fmt(rs['sequential_p99'], 'x')},"
                f" throughput {_fmt(rs['concurrent_runs_per_s'], 'x')}, tokens/s {_fmt(rs['tokens_per_s'], 'x')},"
                f" stream tokens/s {_fmt(rs['stream_tokens_per_s'], 'x')}"
            )
    return "\n".join(lines)


def markdown(report: dict[str, Any]) -> str:
    """The same figures as a Markdown table, ready for docs/performance.md."""
    clients = report["params"]["clients"]
    lines = [
        f"| server | median ms | p99 ms | failures | runs/s @{clients} | tok/s | stream tok/s | ttft ms |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in report["results"]:
        if r.get("error"):
            lines.append(f"| {r['name']} | failed: {r['error']} | | | | | | |")
            continue
        failures = sum(int((r.get(s) or {}).get("failures", 0)) for s in ("sequential", "concurrent", "tokens"))
        cells = [
            _fmt(_get(r, "sequential", "median_ms")),
            _fmt(_get(r, "sequential", "p99_ms")),
            str(failures),
            _fmt(_get(r, "concurrent", "runs_per_s")),
            _fmt(_get(r, "tokens", "tokens_per_s")),
            _fmt(_get(r, "tokens", "stream_tokens_per_s")),
            _fmt(_get(r, "tokens", "ttft_median_ms")),
        ]
        lines.append(f"| {r['name']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def save(report: dict[str, Any], out: Path | None) -> Path:
    """Write the report as JSON (default: bench/results/bench-<UTC timestamp>.json, gitignored)."""
    if out is None:
        RESULTS_DIR.mkdir(exist_ok=True)
        out = RESULTS_DIR / f"bench-{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}.json"
    out.write_text(json.dumps(report, indent=2) + "\n")
    return out
