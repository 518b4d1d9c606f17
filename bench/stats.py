"""Summary statistics for latency samples (pure functions, no I/O)."""

from __future__ import annotations

import math
import statistics


def percentile(samples: list[float], pct: float) -> float:
    """Nearest-rank percentile: the smallest sample with at least `pct` % of samples at or below it."""
    if not samples:
        raise ValueError("percentile of no samples")
    if not 0 < pct <= 100:
        raise ValueError(f"percentile must be in (0, 100], got {pct}")
    ordered = sorted(samples)
    rank = math.ceil(pct / 100 * len(ordered))
    return ordered[rank - 1]


def summary(samples_ms: list[float]) -> dict[str, float]:
    """Median, p90, p99, mean, min and max of latency samples in milliseconds."""
    return {
        "median_ms": round(statistics.median(samples_ms), 3),
        "p90_ms": round(percentile(samples_ms, 90), 3),
        "p99_ms": round(percentile(samples_ms, 99), 3),
        "mean_ms": round(statistics.fmean(samples_ms), 3),
        "min_ms": round(min(samples_ms), 3),
        "max_ms": round(max(samples_ms), 3),
    }


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    """numerator / denominator rounded to 2 places, or None when either side is missing or zero."""
    if not numerator or not denominator:
        return None
    return round(numerator / denominator, 2)
