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
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


# (ratio name, section, key, kind): "latency" ratios are target / reference, "rate" ones reference / target,
# so a ratio above 1 always means the reference is better.
RATIO_FIELDS: tuple[tuple[str, str, str, str], ...] = (
    ("sequential_median", "sequential", "median_ms", "latency"),
    ("sequential_p99", "sequential", "p99_ms", "latency"),
    ("concurrent_runs_per_s", "concurrent", "runs_per_s", "rate"),
    ("tokens_per_s", "tokens", "tokens_per_s", "rate"),
    ("stream_tokens_per_s", "tokens", "stream_tokens_per_s", "rate"),
    ("ttft", "tokens", "ttft_median_ms", "latency"),
    ("thread_stream_ttfe", "thread_stream", "ttfe_median_ms", "latency"),
    ("thread_stream_events_per_s", "thread_stream", "events_per_s", "rate"),
)
RATIO_LABELS = {
    "sequential_median": "median",
    "sequential_p99": "p99",
    "concurrent_runs_per_s": "runs/s",
    "tokens_per_s": "tok/s",
    "stream_tokens_per_s": "stream tok/s",
    "ttft": "ttft",
    "thread_stream_ttfe": "thread-stream ttfe",
    "thread_stream_events_per_s": "thread-stream ev/s",
}


def ratio_pair(target: dict[str, Any], reference: dict[str, Any]) -> dict[str, float | None]:
    """How many times better `reference` is than `target` on every figure (None where either lacks it)."""
    out: dict[str, float | None] = {}
    for name, section, key, kind in RATIO_FIELDS:
        t, r = _get(target, section, key), _get(reference, section, key)
        out[name] = ratio(t, r) if kind == "latency" else ratio(r, t)
    return out


def ratios(results: list[dict[str, Any]], reference: str) -> dict[str, dict[str, float | None]]:
    """For every other target: how many times better the reference is (>1 means the reference wins).

    Latencies: target / reference. Rates (runs/s, tokens/s, events/s): reference / target. With the
    floor as the reference this is every server's overhead over the graphs run in-process.
    """
    ref = next((r for r in results if r["name"] == reference and not r.get("error")), None)
    if ref is None:
        return {}
    return {r["name"]: ratio_pair(r, ref) for r in results if r["name"] != reference and not r.get("error")}


def _fmt(value: float | None, suffix: str = "") -> str:
    if value is None:
        return "-"
    return f"{value:,.1f}{suffix}" if value >= 10 else f"{value:,.2f}{suffix}"


def _failures(result: dict[str, Any]) -> int:
    sections = ("sequential", "concurrent", "tokens", "thread_stream")
    return sum(int((result.get(s) or {}).get("failures", 0)) for s in sections)


def _thread_stream_cells(result: dict[str, Any]) -> tuple[str, str]:
    """(ttfe ms, events/s) of the thread-streaming test, "n/a" where the target does not serve it."""
    section = result.get("thread_stream")
    if section is None:
        return "-", "-"
    if section.get("served") is False:
        return "n/a", "n/a"
    return _fmt(_get(result, "thread_stream", "ttfe_median_ms")), _fmt(_get(result, "thread_stream", "events_per_s"))


def _cells(result: dict[str, Any]) -> list[str]:
    ttfe, events = _thread_stream_cells(result)
    return [
        _fmt(_get(result, "sequential", "median_ms")),
        _fmt(_get(result, "sequential", "p99_ms")),
        str(_failures(result)),
        _fmt(_get(result, "concurrent", "runs_per_s")),
        _fmt(_get(result, "tokens", "tokens_per_s")),
        _fmt(_get(result, "tokens", "stream_tokens_per_s")),
        _fmt(_get(result, "tokens", "ttft_median_ms")),
        ttfe,
        events,
    ]


def _columns(clients: int) -> list[str]:
    return [
        "median ms",
        "p99 ms",
        "fail",
        f"runs/s@{clients}",
        "tok/s",
        "stream tok/s",
        "ttft ms",
        "ts ttfe ms",
        "ts ev/s",
    ]


def _ratio_sections(report: dict[str, Any]) -> list[tuple[str, dict[str, dict[str, float | None]]]]:
    ref = report["reference"]
    out = []
    if report.get("ratios"):
        out.append(
            (f"{ref} is N times better than (same run; latency: target/{ref}, rates: {ref}/target)", report["ratios"])
        )
    floor_ratios = report.get("floor_ratios") or {}
    if floor_ratios:
        out.append(("overhead over the floor (latency: target/floor, rates: floor/target)", floor_ratios))
    return out


def table(report: dict[str, Any]) -> str:
    """A plain-text table: one row per target, then the ratios to the reference and to the floor."""
    columns = _columns(report["params"]["clients"])
    widths = [max(10, len(c) + 2) for c in columns]
    head = f"{'target':<16}" + "".join(f"{c:>{w}}" for c, w in zip(columns, widths, strict=True))
    lines = [head, "-" * len(head)]
    for r in report["results"]:
        if r.get("error"):
            lines.append(f"{r['name']:<16}  FAILED: {r['error']}")
            continue
        lines.append(f"{r['name']:<16}" + "".join(f"{c:>{w}}" for c, w in zip(_cells(r), widths, strict=True)))
    for title, section in _ratio_sections(report):
        lines += ["", title + ":"]
        for name, rs in section.items():
            shown = ", ".join(f"{RATIO_LABELS[k]} {_fmt(v, 'x')}" for k, v in rs.items() if v is not None)
            lines.append(f"  {name:<16} {shown or '-'}")
    return "\n".join(lines)


def markdown(report: dict[str, Any]) -> str:
    """The same figures as Markdown tables, ready for docs/performance.md."""
    columns = _columns(report["params"]["clients"])
    lines = [
        "| target | " + " | ".join(columns) + " |",
        "|---" * (len(columns) + 1) + "|",
    ]
    for r in report["results"]:
        if r.get("error"):
            lines.append(f"| {r['name']} | failed: {r['error']} |" + " |" * (len(columns) - 1))
            continue
        lines.append(f"| {r['name']} | " + " | ".join(_cells(r)) + " |")
    for title, section in _ratio_sections(report):
        keys = [k for k in RATIO_LABELS if any(rs.get(k) is not None for rs in section.values())]
        lines += ["", title + ":", "", "| vs | " + " | ".join(RATIO_LABELS[k] for k in keys) + " |"]
        lines.append("|---" * (len(keys) + 1) + "|")
        for name, rs in section.items():
            lines.append(f"| {name} | " + " | ".join(_fmt(rs.get(k), "x") for k in keys) + " |")
    return "\n".join(lines)


def save(report: dict[str, Any], out: Path | None, prefix: str = "bench") -> Path:
    """Write the report as JSON (default: bench/results/<prefix>-<UTC timestamp>.json, gitignored)."""
    if out is None:
        RESULTS_DIR.mkdir(exist_ok=True)
        out = RESULTS_DIR / f"{prefix}-{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}.json"
    out.write_text(json.dumps(report, indent=2) + "\n")
    return out
