"""Root lifecycle of every run on the thread event log: exactly one terminal per run.

A run's events on the thread log are: root ``running`` (each attempt), its graph events, then one
``input.requested`` per pending interrupt when it paused, then exactly one root terminal, last:
``completed``, ``interrupted`` or ``failed``. The protocol has no ``cancelled`` status and the Python
client waits for ``completed``/``failed`` only, so cancellations end with ``failed`` and
``code: "cancelled"`` (``"timeout"``, ``"worker_lost"`` and ``"refused"`` likewise name the other
server-side endings). Every root lifecycle event also carries the ``run_id``.

Runs that never start (cancelled while pending, or by a newer run's multitask strategy) get their
``failed`` deferred while another run is active, so it lands right after that run's terminal.
"""

from __future__ import annotations

import logging
from typing import Any

from cogni_server.runs.protocol import checkpoint_payload, pending
from cogni_server.streaming.thread_log import PendingEvent, ThreadLog

log = logging.getLogger("cogni_server.runs")

_MIRRORED = frozenset({"values", "updates", "custom", "checkpoints", "tasks"})


class RunTracker:
    """What one run attempt has put on the thread log so far (interrupts, open subgraphs, values)."""

    def __init__(self, thread_log: ThreadLog, thread_id: str, run_id: str, graph_name: str) -> None:
        self.log = thread_log
        self.thread_id = thread_id
        self.run_id = run_id
        self.graph_name = graph_name
        self.interrupts: dict[str, tuple[list[str], Any]] = {}
        self.open_children: dict[tuple[str, ...], str] = {}
        self.root_values: Any = None

    @property
    def last_values(self) -> Any:
        """The root state, flagged with ``__interrupt__`` when the run paused (what the executor reads)."""
        if self.interrupts and isinstance(self.root_values, dict):
            return {**self.root_values, "__interrupt__": list(self.interrupts)}
        return self.root_values

    def emit(self, method: str, namespace: list[str], data: Any, timestamp: Any = None) -> None:
        if method == "lifecycle" and namespace and isinstance(data, dict):
            key = tuple(namespace)
            if data.get("event") == "started":
                self.open_children[key] = str(data.get("graph_name") or key[-1].split(":", 1)[0])
            elif data.get("event") in ("completed", "failed", "interrupted"):
                self.open_children.pop(key, None)
        self.log.publish(self.thread_id, [pending(method, namespace, data, timestamp)], run_id=self.run_id)

    def saw_interrupt(self, namespace: list[str], interrupt_id: Any, value: Any) -> None:
        """First namespace wins: LangGraph reports a subgraph's interrupt again at the root."""
        if isinstance(interrupt_id, str) and interrupt_id not in self.interrupts:
            self.interrupts[interrupt_id] = (list(namespace), value)

    def mirror(self, namespace: list[str], mode: str, chunk: Any) -> None:
        """A v1 run's chunk onto the thread log (cheap modes only; messages stay v1-only)."""
        if mode not in _MIRRORED:
            return
        if mode == "values":
            if isinstance(chunk, dict) and "__interrupt__" in chunk:
                for intr in chunk["__interrupt__"] or ():
                    self.saw_interrupt(namespace, getattr(intr, "id", None), getattr(intr, "value", None))
                chunk = {k: v for k, v in chunk.items() if k != "__interrupt__"}
            if not namespace:
                self.root_values = chunk
        elif mode == "updates" and isinstance(chunk, dict) and "__interrupt__" in chunk:
            for intr in chunk["__interrupt__"] or ():
                self.saw_interrupt(namespace, getattr(intr, "id", None), getattr(intr, "value", None))
        elif mode == "checkpoints":
            chunk = checkpoint_payload(chunk)
        self.emit(mode, namespace, chunk)


class RunLifecycle:
    """Emits the root lifecycle events of runs onto the thread log (one per process)."""

    def __init__(self, thread_log: ThreadLog) -> None:
        self.log = thread_log

    def _root(self, event: str, run_id: str, graph_name: str | None, **extra: Any) -> PendingEvent:
        data: dict[str, Any] = {"event": event}
        if graph_name:
            data["graph_name"] = graph_name
        data.update(extra)
        data["run_id"] = run_id
        return pending("lifecycle", [], data)

    def begin(self, run: dict[str, Any]) -> RunTracker:
        """The attempt starts executing: root ``running`` (the thread's active run from now on)."""
        run_id, thread_id = str(run["run_id"]), str(run["thread_id"])
        graph_name = str(run["graph_id"])
        self.log.publish(thread_id, [self._root("running", run_id, graph_name)], run_id=run_id, mode="begin")
        return RunTracker(self.log, thread_id, run_id, graph_name)

    def finish(
        self,
        tracker: RunTracker,
        *,
        status: str,
        error: dict[str, Any] | None,
        cancelled: str | None,
        interrupts: dict[str, Any],
    ) -> None:
        """The attempt's end, queued right after its status is committed: interrupts, then the one
        terminal (the caller flushes the log)."""
        events: list[PendingEvent] = []
        run_id, graph_name = tracker.run_id, tracker.graph_name
        if status == "interrupted" and cancelled is None:
            # the committed state says which interrupts are pending; the stream says where they were raised
            pending_ids = [
                (str(intr.get("id")), intr.get("value"))
                for task_interrupts in interrupts.values()
                for intr in task_interrupts or ()
                if isinstance(intr, dict) and intr.get("id")
            ]
            announced: dict[str, tuple[list[str], Any]] = {}
            for interrupt_id, value in pending_ids:
                seen = tracker.interrupts.get(interrupt_id)
                announced.setdefault(interrupt_id, (seen[0], seen[1]) if seen else ([], value))
            for interrupt_id, (namespace, value) in (announced or tracker.interrupts).items():
                data = {"interrupt_id": interrupt_id, "payload": value, "value": value}
                events.append(pending("input.requested", namespace, data))
            events.append(self._root("interrupted", run_id, graph_name))
        elif status == "success":
            events.append(self._root("completed", run_id, graph_name))
        else:
            if cancelled is not None:
                message = "Run cancelled (rollback)" if cancelled == "rollback" else "Run cancelled"
                code = "cancelled"
            else:
                message = _error_text(error)
                code = "timeout" if status == "timeout" else "error"
            for key in sorted(tracker.open_children, key=len, reverse=True):  # subgraphs still open
                child = {"event": "failed", "graph_name": tracker.open_children[key], "error": message}
                events.append(pending("lifecycle", list(key), child))
            events.append(self._root("failed", run_id, graph_name, error=message, code=code))
        self.log.publish(tracker.thread_id, events, run_id=run_id, mode="end")

    async def ended_without_running(
        self, thread_id: str, run_id: str, *, error: str, code: str, graph_name: str | None = None, deferred: bool
    ) -> None:
        """A run that never executes (or whose worker was lost for good) gets its one terminal.

        ``deferred``: it never began, so while another run is active the event waits for that
        run's end; otherwise it also ends the run if it is the active one (the sweeper's case).
        """
        event = self._root("failed", run_id, graph_name, error=error, code=code)
        self.log.publish(thread_id, [event], run_id=run_id, mode="defer" if deferred else "end")
        await self.log.flush()


def _error_text(error: dict[str, Any] | None) -> str:
    if not error:
        return "Run failed"
    return str(error.get("message") or error.get("error") or "Run failed")
