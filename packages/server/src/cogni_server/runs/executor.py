"""Execute one claimed run: stream the graph, publish wire events, honour cancellation, record the end.

The database is updated before the broker stream ends, so a client that sees the stream close and
asks for the run already reads its final status.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from typing import Any

from langgraph.errors import GraphInterrupt
from psycopg_pool import AsyncConnectionPool

from cogni_server import metrics
from cogni_server.graphs import GraphRegistry
from cogni_server.runs.inputs import build_command, run_config
from cogni_server.runs.lifecycle import RunLifecycle, RunTracker
from cogni_server.runs.protocol import run_v3
from cogni_server.runs.settings import RunSettings, UnknownRunSettings, load_run_settings
from cogni_server.runs.stream_modes import ChunkRouter, langgraph_modes, split_ns
from cogni_server.serde import dumps, to_jsonable
from cogni_server.storage import checkpoints as checkpoint_repo
from cogni_server.storage import runs as run_repo
from cogni_server.storage import threads as thread_repo
from cogni_server.streaming import StreamBroker

log = logging.getLogger("cogni_server.runs")


@dataclass
class Outcome:
    status: str  # success | error | interrupted | timeout
    thread_status: str
    values: Any
    interrupts: dict[str, Any]
    error: dict[str, Any] | None
    rolled_back: bool = False
    cancelled: str | None = None  # the control action that stopped the run (thread-stream lifecycle)


class RunCancelled(Exception):
    def __init__(self, action: str) -> None:
        super().__init__(action)
        self.action = action


class Executor:
    """Holds what every run needs (pool, checkpointer, graphs, broker); one instance per process."""

    def __init__(
        self,
        *,
        pool: AsyncConnectionPool[Any],
        checkpointer: Any,
        registry: GraphRegistry,
        broker: StreamBroker,
        run_timeout: float = 0.0,
        lifecycle: RunLifecycle | None = None,
    ) -> None:
        self.pool = pool
        self.checkpointer = checkpointer
        self.registry = registry
        self.broker = broker
        self.run_timeout = run_timeout  # seconds per attempt; 0 = no limit
        self.lifecycle = lifecycle  # the thread-streaming event log's root lifecycle (None: off)

    async def execute(self, run: dict[str, Any], worker_id: str) -> None:
        run_id, thread_id = str(run["run_id"]), str(run["thread_id"])
        try:
            settings = load_run_settings(run["kwargs"])
        except UnknownRunSettings as exc:
            await self._refuse(run, worker_id, exc)
            return
        resumable = settings.stream_resumable
        started = time.perf_counter()

        async def publish(event: str, data: bytes) -> None:
            await self.broker.publish(run_id, event, data, resumable=resumable, thread_id=thread_id)

        await publish("metadata", dumps({"run_id": run_id, "attempt": run["attempt"]}))
        # thread stream: root `running` (not for a stateless run: its temporary thread is deleted after it)
        tracker = self.lifecycle.begin(run) if self.lifecycle is not None and not settings.temporary else None
        control = asyncio.ensure_future(self.broker.wait_control(run_id))
        graph_task = asyncio.ensure_future(self._stream(run, settings, publish, tracker))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.run_timeout if self.run_timeout > 0 else None

        def remaining() -> float | None:
            return None if deadline is None else max(0.0, deadline - loop.time())

        try:
            await asyncio.wait({control, graph_task}, timeout=remaining(), return_when=asyncio.FIRST_COMPLETED)
            if not graph_task.done() and control.done() and control.exception() is not None:
                # The broker cannot deliver cancellations any more (shutting down): finish the run.
                await asyncio.wait({graph_task}, timeout=remaining())
            if graph_task.done():
                try:
                    outcome = await self._outcome(run, settings, graph_task)
                except Exception as exc:  # e.g. reading the interrupted state failed
                    log.exception("run %s: could not summarise the outcome", run_id)
                    outcome = Outcome("error", "error", None, {}, {"error": type(exc).__name__, "message": str(exc)})
            else:
                graph_task.cancel()
                with contextlib.suppress(BaseException):
                    await graph_task
                if control.done() and control.exception() is None:
                    outcome = await self._cancelled(run, control.result())
                else:  # the run timeout elapsed first
                    message = f"the run exceeded the run timeout of {self.run_timeout:g}s (COGNI_RUN_TIMEOUT_SECONDS)"
                    log.warning("run %s: %s", run_id, message)
                    outcome = Outcome("timeout", "error", None, {}, {"error": "TimeoutError", "message": message})
            if outcome.error is not None:
                await publish("error", dumps(outcome.error))
        except asyncio.CancelledError:
            # The worker is draining: leave the row running; the drain re-queues it for another worker.
            graph_task.cancel()
            raise
        finally:
            control.cancel()
        owns_stream = True
        ended = False

        def end_thread_stream() -> None:
            # The thread stream's terminal, queued right after the commit (before another run of
            # the thread can be claimed and begin), so each run's events stay contiguous.
            nonlocal ended
            if tracker is not None and self.lifecycle is not None and not ended:
                ended = True
                try:
                    self.lifecycle.finish(
                        tracker,
                        status=outcome.status,
                        error=outcome.error,
                        cancelled=outcome.cancelled,
                        interrupts=outcome.interrupts,
                    )
                except Exception:
                    log.exception("run %s: could not write its thread-stream terminal", run_id)

        try:
            async with self.pool.connection() as conn:
                if outcome.rolled_back:
                    if await run_repo.delete_cancelled(conn, run_id, worker_id) is not None:
                        end_thread_stream()
                    await checkpoint_repo.delete_run(conn, thread_id, run_id)
                else:
                    finished = await run_repo.finish(
                        conn,
                        run_id,
                        worker_id,
                        status=outcome.status,
                        thread_status=outcome.thread_status,
                        values=outcome.values,
                        interrupts=outcome.interrupts,
                        error=outcome.error,
                        update_state=outcome.values is not None,
                    )
                    if finished:
                        end_thread_stream()
                    else:
                        if await run_repo.status_of(conn, run_id) is not None:
                            # Our lease lapsed and another worker owns the run now: its stream is theirs.
                            owns_stream = False
                            log.warning("run %s: lease lost before finishing; result discarded", run_id)
                        elif not await thread_repo.exists_any(conn, run["thread_id"]):
                            # The thread was deleted mid-run: drop checkpoints written after the delete.
                            await checkpoint_repo.delete_thread(conn, thread_id)
                    if finished and settings.temporary:
                        await thread_repo.delete_any(conn, run["thread_id"])
                        await checkpoint_repo.delete_thread(conn, thread_id)
        finally:
            if ended and self.lifecycle is not None:
                with contextlib.suppress(Exception):  # written before the v1 stream ends
                    await self.lifecycle.log.flush()
            if owns_stream:
                await self.broker.end(run_id)
            with contextlib.suppress(Exception):
                await self.broker.notify_run_pending()
            metrics.RUNS_FINISHED.labels(outcome.status).inc()
            metrics.RUN_SECONDS.observe(time.perf_counter() - started)

    async def _refuse(self, run: dict[str, Any], worker_id: str, exc: UnknownRunSettings) -> None:
        """A run whose stored settings this release cannot read ends in error, saying why."""
        run_id = str(run["run_id"])
        log.error("run %s: %s", run_id, exc)
        error = {"error": "UnknownRunSettings", "message": str(exc)}
        try:
            await self.broker.publish(run_id, "error", dumps(error), thread_id=str(run["thread_id"]))
            async with self.pool.connection() as conn:
                await run_repo.finish(
                    conn,
                    run_id,
                    worker_id,
                    status="error",
                    thread_status="error",
                    values=None,
                    interrupts={},
                    error=error,
                    update_state=False,
                )
        finally:
            if self.lifecycle is not None:  # thread stream: the run never ran, it still ends
                with contextlib.suppress(Exception):
                    await self.lifecycle.ended_without_running(
                        str(run["thread_id"]), run_id, error=str(exc), code="refused", deferred=False
                    )
            await self.broker.end(run_id)
            metrics.RUNS_FINISHED.labels("error").inc()

    async def _graph(self, run: dict[str, Any], config: dict[str, Any]) -> Any:
        return await self.registry.get(run["graph_id"], checkpointer=self.checkpointer, config=config)

    async def _stream(
        self, run: dict[str, Any], settings: RunSettings, publish: Any, tracker: RunTracker | None = None
    ) -> ChunkRouter | RunTracker:
        config = run_config(run, settings)
        graph = await self._graph(run, config)
        wire_modes = settings.stream_mode or ["values"]
        router = ChunkRouter(wire_modes, publish)
        graph_input: Any = settings.input
        if settings.command:
            graph_input = build_command(settings.command)
        if run["attempt"] > 1 and await self._has_own_checkpoint(config, str(run["run_id"])):
            graph_input = None  # a retry resumes from the last checkpoint the run wrote
        subgraphs = settings.stream_subgraphs
        options: dict[str, Any] = {
            "stream_mode": langgraph_modes(wire_modes),
            "subgraphs": True,
            "durability": settings.durability or "async",
        }
        if settings.interrupt_before is not None:
            options["interrupt_before"] = settings.interrupt_before
        if settings.interrupt_after is not None:
            options["interrupt_after"] = settings.interrupt_after
        if settings.context:
            options["context"] = settings.context
        if tracker is not None and settings.protocol:  # thread-streaming run: LangGraph's v3 events
            v3_options = {k: v for k, v in options.items() if k not in ("stream_mode", "subgraphs")}
            return await run_v3(graph, graph_input, config, v3_options, tracker, publish)
        if tracker is not None:  # REST run: updates are mirrored onto the thread stream too
            options["stream_mode"] = sorted({*options["stream_mode"], "updates"})
        if "events" in wire_modes:
            async for event in graph.astream_events(graph_input, config, version="v2", **options):
                if event["event"] == "on_chain_stream" and not event.get("parent_ids"):
                    ns, mode, chunk = event["data"]["chunk"]
                    if tracker is not None:
                        tracker.mirror(split_ns(ns), mode, chunk)
                    if subgraphs or not ns:
                        await router.route(split_ns(ns), mode, chunk)
                    continue
                await publish("events", dumps(event))
        else:
            async for ns, mode, chunk in graph.astream(graph_input, config, **options):
                if tracker is not None and mode != "messages":  # never on the per-token path
                    tracker.mirror(split_ns(ns), mode, chunk)
                if subgraphs or not ns:
                    await router.route(split_ns(ns), mode, chunk)
                elif mode == "messages":  # LLM tokens of nested graphs still reach the root listener
                    await router.route([], mode, chunk)
        return router

    async def _has_own_checkpoint(self, config: dict[str, Any], run_id: str) -> bool:
        cfg = {"configurable": {"thread_id": config["configurable"]["thread_id"], "checkpoint_ns": ""}}
        tup = await self.checkpointer.aget_tuple(cfg)
        return bool(tup and (tup.metadata or {}).get("run_id") == run_id)

    async def _outcome(
        self, run: dict[str, Any], settings: RunSettings, task: asyncio.Future[ChunkRouter | RunTracker]
    ) -> Outcome:
        if task.cancelled():
            return Outcome("interrupted", "idle", None, {}, None, cancelled="interrupt")
        exc = task.exception()
        if exc is not None and not isinstance(exc, GraphInterrupt):
            log.warning("run %s failed: %r", run["run_id"], exc)
            return Outcome("error", "error", None, {}, {"error": type(exc).__name__, "message": str(exc)})
        router = task.result() if exc is None else None
        values = router.last_values if router else None
        interrupted = isinstance(values, dict) and "__interrupt__" in values
        if not interrupted and (settings.interrupt_before or settings.interrupt_after or values is None):
            interrupted = True  # decided from the checkpoint below
        interrupts: dict[str, Any] = {}
        if interrupted:
            interrupts, has_next, state_values = await self._interrupts(run)
            interrupted = bool(interrupts) or has_next
            if values is None:
                values = state_values
        clean = (
            to_jsonable({k: v for k, v in values.items() if k != "__interrupt__"})
            if isinstance(values, dict)
            else to_jsonable(values)
        )
        if interrupted:
            return Outcome("interrupted", "interrupted", clean, interrupts, None)
        return Outcome("success", "idle", clean, {}, None)

    async def _interrupts(self, run: dict[str, Any]) -> tuple[dict[str, Any], bool, Any]:
        config = {"configurable": {"thread_id": str(run["thread_id"])}}
        graph = await self._graph(run, config)
        state = await graph.aget_state(config)
        interrupts = {t.id: to_jsonable(list(t.interrupts)) for t in state.tasks if t.interrupts}
        return interrupts, bool(state.next), state.values

    async def _cancelled(self, run: dict[str, Any], action: str) -> Outcome:
        if action == "rollback":
            return Outcome("interrupted", "idle", None, {}, None, rolled_back=True, cancelled=action)
        return Outcome("interrupted", "idle", None, {}, None, cancelled=action)
