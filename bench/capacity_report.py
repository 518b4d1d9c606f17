"""Capacity bench: the issue-9 verdict and the text report (see bench/capacity.py)."""

from __future__ import annotations

from typing import Any

TRANSPORTS = ("sse", "websocket")
TARGET_STREAMS = 2000
TARGET_RSS_BYTES = 1_000_000_000  # "1 GB"
TARGET_LATENCY_FACTOR = 2.0


def mib(kib: int | None) -> float | None:
    return round(kib / 1024, 1) if kib is not None else None


def verdict(
    rss_open_kib: int | None, open_throughout: int, wanted: int, factors: dict[str, float | None]
) -> dict[str, bool | None]:
    """The issue-9 targets: every stream open (and still open after the runs), RSS < 1 GB with them
    open, run start < 2x idle."""
    start = factors.get("start_median")
    return {
        "all_streams_open": open_throughout == wanted,
        "rss_under_1gb": rss_open_kib * 1024 < TARGET_RSS_BYTES if rss_open_kib is not None else None,
        "start_under_2x_idle": start < TARGET_LATENCY_FACTOR if start is not None else None,
    }


def summary_line(section: dict[str, Any]) -> str:
    if section.get("error"):
        return f"error: {section['error']}"
    if not section.get("served", True):
        return f"n/a ({section.get('note')})"
    rss = section["rss_mib"]
    factor = section["latency_factor"]
    redis = section.get("redis_connections")
    held = f"; Redis connections {redis['before']} -> {redis['open']}" if redis else ""
    return (
        f"{section['streams_opened']}/{section['streams_wanted']} opened ({section['open_failures']} failed), "
        f"{section['still_open_at_rss']} still open at the RSS reading, "
        f"{section['still_open_after_runs']} after the runs; "
        f"RSS {rss['before']} -> {rss['open']} MiB ({section['per_stream_kib']} KiB/stream), "
        f"run start median x{factor['start_median']}, run median x{factor['run_median']} vs idle{held}"
    )


def text_report(full: dict[str, Any]) -> str:
    result = full["result"]
    idle = result.get("latency_idle") or {}
    lines = [
        f"capacity of {full['target']['name']} ({full['target']['kind']}), {full['params']['streams']} streams",
        f"idle: RSS {result.get('rss_mib_idle')} MiB; run start median {idle.get('start', {}).get('median_ms')} ms"
        f" (p99 {idle.get('start', {}).get('p99_ms')}), whole run median {idle.get('run', {}).get('median_ms')} ms",
    ]
    for transport in TRANSPORTS:
        if transport in result:
            lines.append(f"{transport}: {summary_line(result[transport])}")
            section = result[transport]
            if section.get("served") and section.get("latency_open"):
                lat = section["latency_open"]
                lines.append(
                    f"  with streams open: run start median {lat.get('start', {}).get('median_ms')} ms"
                    f" (p99 {lat.get('start', {}).get('p99_ms')}), whole run median"
                    f" {lat.get('run', {}).get('median_ms')} ms; targets: {section['meets']}"
                )
    return "\n".join(lines)
