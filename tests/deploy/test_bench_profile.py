"""`python -m bench profile`'s breakdown of py-spy's raw stacks: idle leaves apart, components right."""

from __future__ import annotations

from bench.profile import breakdown, report

ROOT = ";".join(f"f{i} (entry.py:{i})" for i in range(8))
RAW = "\n".join(
    [
        f"{ROOT};Runner.run (asyncio/runners.py:118) 70",  # uvloop's C loop: waiting or C-level I/O
        f"{ROOT};x (a.py:1);_worker (concurrent/futures/thread.py:81) 10",  # an idle pool thread
        f"{ROOT};route (cogni_server/api/runs.py:3);execute (psycopg/cursor_async.py:9) 15",
        f"{ROOT};publish (cogni_server/streaming/memory.py:1) 5",
        "garbage line without a count",
    ]
)


def test_idle_leaves_are_apart_and_components_are_attributed() -> None:
    total, idle, exclusive, inclusive = breakdown(RAW)
    assert (total, idle) == (20, 80)
    assert exclusive["postgres driver (psycopg, pool)"] == 15
    assert exclusive["our broker and SSE"] == 5
    assert inclusive["our services and routes"] == 15  # the route is on the psycopg stack
    text = report("trivial run", RAW, 2.0, 10)
    assert "20 Python samples, 80 in uvloop or idle" in text and "| postgres driver (psycopg, pool) | 75.0% |" in text
