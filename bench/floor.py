"""The floor: the bench graphs run in-process with LangGraph's Postgres checkpointer, no server.

The same `trivial` and `llm` graphs as every server loads (bench/graphs/), compiled with a Postgres
checkpointer (langgraph-checkpoint-postgres) over a psycopg pool on a fresh database of the same
Postgres, run with `graph.astream(...)` in the bench's own event loop with `durability="async"` (our
server's default). No HTTP, no run queue, no thread rows, no serialisation to the wire: what is left
is the graph and its checkpoints, which no server can do without. Every target is reported as a
ratio to this one.

The checkpointer is our server's (`--floor-saver pooled`, the default): `AsyncPostgresSaver` with its
SQL and serialisation unchanged, minus the instance-wide asyncio lock the stock class takes around
every operation. `--floor-saver stock` uses the stock class; its lock queues 32 concurrent runs behind
each other's checkpoint writes, so its throughput is no floor (ours beats it).

The measurements are the servers' loops (bench/measure.py) around an in-process single run:
- sequential: a new thread id per run, `astream({"count": 0}, stream_mode="values")`, checked;
- concurrent: 32 asyncio tasks (one per "client"), each running back to back;
- tokens: the `llm` graph with `stream_mode="messages"` against the mock model, checked.
"""

from __future__ import annotations

import asyncio
import importlib.util
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from importlib import metadata
from pathlib import Path
from typing import Any

from langchain_core.messages import AIMessageChunk
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
from langgraph.pregel import Pregel
from langgraph.types import Durability
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from bench import measure
from bench.servers import BENCH_DIR, Target
from testsupport import fresh_database

FLOOR_KIND = "in-process floor"
GRAPHS_DIR = BENCH_DIR / "graphs"
POOL_MAX_SIZE = 20  # our server's default pool (COGNI_POOL_MAX_SIZE)
DURABILITY: Durability = "async"  # our server's default durability
SAVERS = ("pooled", "stock")  # the first is the default


def load_graph(name: str) -> Pregel:
    """The compiled `graph` of bench/graphs/<name>.py, imported from its file like a server does."""
    path = GRAPHS_DIR / f"{name}.py"
    module_name = f"bench_floor_graph_{name}"
    if module_name not in sys.modules:
        spec = importlib.util.spec_from_file_location(module_name, path)
        if spec is None or spec.loader is None:
            raise RuntimeError(f"cannot import {path}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        spec.loader.exec_module(module)
    graph = sys.modules[module_name].graph
    if not isinstance(graph, Pregel):
        raise RuntimeError(f"{path}:graph is {type(graph).__name__}, not a compiled graph")
    return graph


def make_saver(pool: AsyncConnectionPool[Any], kind: str) -> AsyncPostgresSaver:
    if kind == "pooled":
        from cogni_server.storage.checkpointer import PooledPostgresSaver

        return PooledPostgresSaver(pool)
    return AsyncPostgresSaver(pool)


@asynccontextmanager
async def floor_pool(database_url: str) -> AsyncIterator[AsyncConnectionPool[Any]]:
    """A psycopg pool set up as our server's (autocommit, dict rows, prepared at once, 20 at most)."""
    pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
        database_url,
        min_size=1,
        max_size=POOL_MAX_SIZE,
        kwargs={"autocommit": True, "row_factory": dict_row, "prepare_threshold": 0},
        open=False,
    )
    await pool.open(wait=True, timeout=30)
    try:
        yield pool
    finally:
        await pool.close()


async def compiled_graphs(pool: AsyncConnectionPool[Any], saver_kind: str = "pooled") -> dict[str, Pregel]:
    """`trivial` and `llm` compiled with a Postgres checkpointer on `pool` (set up first)."""
    saver = make_saver(pool, saver_kind)
    await saver.setup()
    return {name: load_graph(name).copy(update={"checkpointer": saver}) for name in ("trivial", "llm")}


@asynccontextmanager
async def floor_graphs(database_url: str, saver_kind: str = "pooled") -> AsyncIterator[dict[str, Pregel]]:
    """`trivial` and `llm` compiled with a Postgres checkpointer on `database_url`."""
    async with floor_pool(database_url) as pool:
        yield await compiled_graphs(pool, saver_kind)


def _thread_config(**configurable: Any) -> RunnableConfig:
    return {"configurable": {"thread_id": str(uuid.uuid4()), **configurable}}


async def trivial_run(graph: Pregel) -> float:
    """One trivial run on a new thread, streamed with `values`; the wall time in ms."""
    started = time.perf_counter()
    last: Any = None
    try:
        async with asyncio.timeout(measure.RUN_TIMEOUT_S):
            async for chunk in graph.astream(
                {"count": 0}, _thread_config(), stream_mode="values", durability=DURABILITY
            ):
                last = chunk
    except TimeoutError:
        raise
    except Exception as exc:  # a database error is a failed run, as an error event is on a server
        raise measure.RunFailed(f"{type(exc).__name__}: {exc}") from exc
    elapsed = (time.perf_counter() - started) * 1000
    if not isinstance(last, dict) or last.get("count") != 1:
        raise measure.RunFailed(f"last values chunk was {last!r}, expected {{'count': 1}}")
    return elapsed


async def llm_answer(graph: Pregel, llm_base_url: str, tokens: int) -> dict[str, float]:
    """One `llm` answer streamed with `messages`; the same figures as a server's answer."""
    prompt = f"[mock:tokens={tokens}] benchmark"
    config = _thread_config(llm_base_url=llm_base_url)
    parts: list[str] = []
    first: float | None = None
    last: float | None = None
    started = time.perf_counter()
    try:
        async with asyncio.timeout(measure.RUN_TIMEOUT_S):
            async for message, _meta in graph.astream(
                {"messages": [{"role": "user", "content": prompt}]},
                config,
                stream_mode="messages",
                durability=DURABILITY,
            ):
                content = getattr(message, "content", None)
                if isinstance(message, AIMessageChunk) and isinstance(content, str) and content:
                    last = time.perf_counter()
                    first = first or last
                    parts.append(content)
    except TimeoutError:
        raise
    except Exception as exc:
        raise measure.RunFailed(f"{type(exc).__name__}: {exc}") from exc
    ended = time.perf_counter()
    return measure.answer_timings(tokens, "".join(parts), len(parts), started, first, last, ended)


async def sequential(database_url: str, runs: int, warmup: int, saver: str = "pooled") -> dict[str, Any]:
    async with floor_graphs(database_url, saver) as graphs:
        return await measure.sequential_with(lambda: trivial_run(graphs["trivial"]), runs, warmup)


async def concurrent(database_url: str, clients: int, runs_per_client: int, saver: str = "pooled") -> dict[str, Any]:
    async with floor_graphs(database_url, saver) as graphs:
        graph = graphs["trivial"]
        return await measure.concurrent_with([lambda: trivial_run(graph)] * clients, runs_per_client)


async def token_rate(
    database_url: str, llm_base_url: str, tokens: int, runs: int, saver: str = "pooled"
) -> dict[str, Any]:
    async with floor_graphs(database_url, saver) as graphs:
        graph = graphs["llm"]
        return await measure.token_rate_with(lambda n: llm_answer(graph, llm_base_url, n), tokens, runs)


@contextmanager
def floor(_llm_base_url: str, saver: str = "pooled") -> Iterator[Target]:
    """A fresh database for the floor; the target's `url` is that database (nothing listens)."""
    with fresh_database("floor_bench") as database_url:
        yield Target(
            name="floor",
            url=database_url,
            kind=FLOOR_KIND,
            details={
                "langgraph": metadata.version("langgraph"),
                "langgraph-checkpoint-postgres": metadata.version("langgraph-checkpoint-postgres"),
                "checkpointer": "AsyncPostgresSaver" if saver == "stock" else "PooledPostgresSaver (ours: no lock)",
                "storage": "postgres (fresh database)",
                "durability": DURABILITY,
                "graphs": str(Path("bench/graphs")),
            },
        )
