"""Identifiers: UUIDv7 for runs (time-ordered, Python 3.11 has none) and the system assistant ids."""

from __future__ import annotations

import os
import time
import uuid

# The namespace the reference server derives system assistant ids from, so that the assistant id of
# a graph (e.g. "agent" -> fe096781-5601-53d2-b2f6-0d3403f7e9ca) is the same on both servers.
NAMESPACE_GRAPH = uuid.UUID("6ba7b821-9dad-11d1-80b4-00c04fd430c8")

_last_ms = 0
_counter = 0


def uuid7() -> uuid.UUID:
    """RFC 9562 UUIDv7: 48-bit unix millis, 12-bit monotonic counter in rand_a, 62 random bits."""
    global _last_ms, _counter
    ms = time.time_ns() // 1_000_000
    if ms <= _last_ms:
        _counter += 1
        if _counter > 0xFFF:  # counter exhausted within one millisecond: borrow the next one
            _last_ms += 1
            _counter = 0
        ms = _last_ms
    else:
        _last_ms = ms
        _counter = int.from_bytes(os.urandom(2), "big") & 0x3FF  # leave headroom for increments
    rand_b = int.from_bytes(os.urandom(8), "big") & ((1 << 62) - 1)
    value = (ms & ((1 << 48) - 1)) << 80
    value |= 0x7 << 76
    value |= (_counter & 0xFFF) << 64
    value |= 0b10 << 62
    value |= rand_b
    return uuid.UUID(int=value)


def system_assistant_id(graph_id: str) -> uuid.UUID:
    """Deterministic id of the system assistant of ``graph_id`` (same as the reference server)."""
    return uuid.uuid5(NAMESPACE_GRAPH, graph_id)


def parse_uuid(value: str, what: str) -> uuid.UUID:
    """Parse a path/body id or raise ValueError naming what was wrong (-> 422 upstream)."""
    try:
        return uuid.UUID(str(value))
    except (ValueError, AttributeError, TypeError):
        raise ValueError(f"{what} must be a UUID, got {value!r}") from None
