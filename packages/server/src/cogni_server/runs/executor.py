"""Execute one claimed run: stream the graph, publish wire events, honour cancellation; the end is
recorded by ``runs.ending``.

Every way an attempt can go wrong still ends it (issue 12):
- a failure outside the graph (the broker unreachable past its outage limit on the first event)
  ends the run in ``error``, never leaves it ``running``;
- a transient database error inside the graph (a checkpoint write on a connection that died) gives
  the run back to the queue for another attempt (up to ``COGNI_MAX_ATTEMPTS``) instead of failing it;
- a run whose lease another worker took (``abandon``) stops without finishing: row and stream
  belong to the new owner;
- cancelled (the drain), the graph is stopped and awaited before the run is handed back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from langgraph._internal._constants import CONFIG_KEY_RUNTIME
from langgraph.errors import GraphInterrupt
from langgraph.runtime import Runtime
from psycopg_pool import AsyncConnectionPool

from cogni_ai_core import LLM_KEY_CONFIGURABLE
from cogni_server.graphs import GraphRegistry
from cogni_server.runs import tracing as run_tracing
from cogni_server.runs.ending import Outcome, RunEnding
from cogni_server.runs.inputs import build_command, run_config
from cogni_server.runs.lifecycle import RunLifecycle, RunTracker
from cogni_server.runs.protocol import run_v3
from cogni_server.runs.run_key import open_run_key
from cogni_server.runs.settings import RunSettings, UnknownRunSettings, load_run_settings
from cogni_server.runs.stream_modes import ChunkRouter, drop_llm_key, langgraph_modes, split_ns
from cogni_server.runs.token_yield import with_token_yield
from cogni_server.serde import dumps, to_jsonable
from cogni_server.storage.pool import is_transient
from cogni_server.storage.run_secrets import SecretBox
from cogni_server.storage.store import StoreBackend
from cogni_server.streaming import StreamBroker

log = logging.getLogger("cogni_server.runs")

# Publishing never suspends (the in-memory broker, the Redis writer's buffer), so a graph streaming a
# fast answer would keep the loop until it paused and the first token would reach the client with most
# of the others: the executor yields once right after the first event and then at least this often.
YIELD_SECONDS = 0.001


async def _stop(task: asyncio.Future[Any]) -> None:
    """Cancel the graph and wait until it really stopped (a node may still be winding down)."""
    task.cancel()
    await asyncio.wait({task})


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
        store: StoreBackend | None = None,
        max_attempts: int = 3,
        lifecycle: RunLifecycle | None = None,
        secrets: SecretBox | None = None,
    ) -> None:
        self.pool = pool
        self.secrets = secrets  # COGNI_SECRETS_KEY: opens the LLM key of a run that was given one
        self.store = store  # graphs see the run owner's view of it (store param, get_store(), runtime.store)
        self.checkpointer = checkpointer
        self.registry = registry
        self.broker = broker
        self.run_timeout = run_timeout  # seconds per attempt; 0 = no limit
        self.lifecycle = lifecycle  # the thread-streaming event log's root lifecycle (None: off)
        self.max_attempts = max_attempts
        self.ending = RunEnding(pool=pool, broker=broker, lifecycle=lifecycle)
        self._leases: dict[str, asyncio.Future[None]] = {}  # runs whose graph is executing here

    def abandon(self, run_id: str) -> bool:
        """Stop a run whose lease another worker holds now, without finishing it. False when the
        run is not executing its graph here (not started, or already ending: its end is fenced)."""
        lost = self._leases.get(run_id)
        if lost is None or lost.done():
            return False
        lost.set_result(None)
        return True

    async def execute(self, run: dict[str, Any], worker_id: str) -> None:
        try:
            settings = load_run_settings(run["kwargs"])
        except UnknownRunSettings as exc:
            await self.ending.refuse(run, worker_id, exc)
            return
        with run_tracing.observe(run, settings.trace_carrier):  # log lines carry the run's ids; spans if tracing
            await self._execute(run, settings, worker_id)

    async def _execute(self, run: dict[str, Any], settings: RunSettings, worker_id: str) -> None:
        run_id = str(run["run_id"])
        started = time.perf_counter()
        lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._leases[run_id] = lost
        # thread stream: root `running` (not for a stateless run: its temporary thread is deleted after it)
        tracker = self.lifecycle.begin(run) if self.lifecycle is not None and not settings.temporary else None
        try:
            outcome = await self._attempt(run, settings, lost, tracker)
        except asyncio.CancelledError:
            raise  # the drain: the graph has stopped; the row stays running until the drain re-queues it
        except Exception as exc:  # outside the graph, e.g. the broker unreachable on the first event
            log.exception("run %s failed outside its graph", run_id)
            outcome = self._failed(run, exc)
        finally:
            self._leases.pop(run_id, None)
        if outcome is None:
            log.warning("run %s: its lease is no longer ours; stopped without finishing it", run_id)
            return
        end = asyncio.ensure_future(self.ending.end(run, settings, worker_id, outcome, started, tracker))
        try:
            await asyncio.shield(end)
        except asyncio.CancelledError:  # the drain: a run half-ended (row done, stream open) helps nobody
            await end
            raise

    async def _attempt(
        self, run: dict[str, Any], settings: RunSettings, lost: asyncio.Future[None], tracker: RunTracker | None
    ) -> Outcome | None:
        """Run the graph to an outcome; None when the lease was lost (the run is someone else's)."""
        run_id, thread_id = str(run["run_id"]), str(run["thread_id"])
        resumable = settings.stream_resumable

        async def publish(event: str, data: bytes) -> None:
            if settings.llm_key:  # the key never leaves in an event (checkpoints and debug show the config)
                data = drop_llm_key(data)
            await self.broker.publish(run_id, event, data, resumable=resumable, thread_id=thread_id)

        await publish("metadata", dumps({"run_id": run_id, "attempt": run["attempt"]}))
        control = asyncio.ensure_future(self.broker.wait_control(run_id))
        graph_task = asyncio.ensure_future(self._stream(run, settings, publish, tracker))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.run_timeout if self.run_timeout > 0 else None

        def remaining() -> float | None:
            return None if deadline is None else max(0.0, deadline - loop.time())

        try:
            first = asyncio.FIRST_COMPLETED
            waits: set[asyncio.Future[Any]] = {control, graph_task, lost}
            await asyncio.wait(waits, timeout=remaining(), return_when=first)
            if not graph_task.done() and not lost.done() and control.done() and control.exception() is not None:
                # The broker cannot deliver cancellations any more (shutting down): finish the run.
                await asyncio.wait(waits - {control}, timeout=remaining(), return_when=first)
            if lost.done() and not graph_task.done():
                await _stop(graph_task)
                return None
            if graph_task.done():
                try:
                    outcome = await self._outcome(run, settings, graph_task)
                except Exception as exc:  # e.g. reading the interrupted state failed
                    log.exception("run %s: could not summarise the outcome", run_id)
                    outcome = self._failed(run, exc)
            else:
                await _stop(graph_task)
                if control.done() and control.exception() is None:
                    outcome = await self._cancelled(run, control.result())
                else:  # the run timeout elapsed first
                    message = f"the run exceeded the run timeout of {self.run_timeout:g}s (COGNI_RUN_TIMEOUT_SECONDS)"
                    log.warning("run %s: %s", run_id, message)
                    outcome = Outcome("timeout", "error", None, {}, {"error": "TimeoutError", "message": message})
            if outcome.error is not None:
                try:
                    await publish("error", dumps(outcome.error))
                except Exception:  # the end is still recorded; the stream's reader gets the run's status
                    log.warning("run %s: could not publish its error event", run_id, exc_info=True)
            return outcome
        except asyncio.CancelledError:
            await _stop(graph_task)
            raise
        finally:
            control.cancel()

    def _failed(self, run: dict[str, Any], exc: BaseException) -> Outcome:
        """The outcome of an attempt that raised: a transient database error is retried."""
        if is_transient(exc) and run["attempt"] < self.max_attempts:
            log.warning("run %s: transient database error (%s); the run is retried", run["run_id"], exc)
            return Outcome("retry", "busy", None, {}, None)
        return Outcome("error", "error", None, {}, {"error": type(exc).__name__, "message": str(exc)})

    def _graph(
        self, run: dict[str, Any], config: dict[str, Any], access_context: str, context: Any = None
    ) -> contextlib.AbstractAsyncContextManager[Any]:
        """The run's graph for one use; a factory sees the run's config and its owner's store view."""
        return self.registry.open(
            run["graph_id"],
            checkpointer=self.checkpointer,
            config=config,
            access_context=access_context,
            runtime_store=self.store.for_run(run["owner"], run) if self.store is not None else None,
            context=context,
        )

    async def _stream(
        self, run: dict[str, Any], settings: RunSettings, publish: Any, tracker: RunTracker | None = None
    ) -> ChunkRouter | RunTracker:
        config = with_token_yield(run_tracing.with_graph_spans(run_config(run, settings)))
        if settings.llm_key:  # `__`-prefixed: LangGraph copies it into no checkpoint or run metadata
            config["configurable"][LLM_KEY_CONFIGURABLE] = await open_run_key(self.pool, self.secrets, run)
        async with self._graph(run, config, "threads.create_run", settings.context or None) as graph:
            return await self._stream_graph(graph, config, run, settings, publish, tracker)

    async def _stream_graph(
        self,
        graph: Any,
        config: dict[str, Any],
        run: dict[str, Any],
        settings: RunSettings,
        publish: Any,
        tracker: RunTracker | None,
    ) -> ChunkRouter | RunTracker:
        if self.store is not None:  # overrides a store compiled into the graph, reaches subgraphs too
            config["configurable"][CONFIG_KEY_RUNTIME] = Runtime(store=self.store.for_run(run["owner"], run))
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
            loop = asyncio.get_running_loop()
            next_yield = 0.0  # the first event at once, then every YIELD_SECONDS
            async for ns, mode, chunk in graph.astream(graph_input, config, **options):
                if tracker is not None and mode != "messages":  # never on the per-token path
                    tracker.mirror(split_ns(ns), mode, chunk)
                if subgraphs or not ns:
                    await router.route(split_ns(ns), mode, chunk)
                elif mode == "messages":  # LLM tokens of nested graphs still reach the root listener
                    await router.route([], mode, chunk)
                if loop.time() >= next_yield:
                    await asyncio.sleep(0)  # the stream's readers write what is published so far
                    next_yield = loop.time() + YIELD_SECONDS
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
            return self._failed(run, exc)
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
        async with self._graph(run, config, "threads.read") as graph:
            state = await graph.aget_state(config)
        interrupts = {t.id: to_jsonable(list(t.interrupts)) for t in state.tasks if t.interrupts}
        return interrupts, bool(state.next), state.values

    async def _cancelled(self, run: dict[str, Any], action: str) -> Outcome:
        if action == "rollback":
            return Outcome("interrupted", "idle", None, {}, None, rolled_back=True, cancelled=action)
        return Outcome("interrupted", "idle", None, {}, None, cancelled=action)
