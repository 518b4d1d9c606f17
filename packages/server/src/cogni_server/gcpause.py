"""Keep Python's cyclic garbage collector from stalling every stream at once.

Once the server has imported LangGraph, LangChain, the graphs and their dependencies, its heap holds
about 220,000 long-lived objects. A full (generation 2) collection walks all of them: 80 to 250 ms
measured on the 2-core bench machine, during which no request is answered and no token is written; a
profile of 200 trivial runs had one such pause in a single stack (85 samples, 340 ms). The objects
that exist once start-up is over live as long as the process, so the server collects once and then
`gc.freeze()`s them: later collections skip them and walk only what traffic allocated since
(`COGNI_GC_FREEZE`, on by default). Every collection's pause is recorded in the histogram
`cogni_gc_pause_seconds{generation}`, so a stall shows up in the metrics.
"""

from __future__ import annotations

import gc
import logging
import time
from typing import Any

from prometheus_client import Gauge, Histogram

log = logging.getLogger("cogni_server.gc")

GC_PAUSE_SECONDS = Histogram(
    "cogni_gc_pause_seconds",
    "Pauses of Python's cyclic garbage collector, by generation",
    ["generation"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1),
)

GC_FROZEN_OBJECTS = Gauge("cogni_gc_frozen_objects", "Start-up objects frozen out of the collector's passes")

_started: list[float] = []


def _time_collection(phase: str, info: dict[str, Any]) -> None:
    if phase == "start":
        _started.append(time.perf_counter())
    elif _started:
        GC_PAUSE_SECONDS.labels(str(info.get("generation", "?"))).observe(time.perf_counter() - _started.pop())


def watch_pauses() -> None:
    """Record every collection's pause (idempotent: the callback is installed once per process)."""
    if _time_collection not in gc.callbacks:
        gc.callbacks.append(_time_collection)


def freeze_startup_heap() -> int:
    """Collect once, then move every object alive now out of the collector's reach; the number moved."""
    gc.collect()
    gc.freeze()
    frozen = gc.get_freeze_count()
    GC_FROZEN_OBJECTS.set(frozen)
    log.info("gc: %d start-up objects frozen (later collections skip them)", frozen)
    return frozen
