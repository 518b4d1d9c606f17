"""The floor behind HTTP: the in-process floor plus what any durable server must add, and nothing else.

The issue's definition of the floor is "the graph run in-process with the same checkpointer, plus two
HTTP round trips and the run's own rows". `--start floor` measures the first part; this target measures
the whole: a bare ASGI app (no framework, no middleware, no auth, no queue, no broker, no thread log) on
uvicorn with uvloop and httptools, as ours runs, serving just the three requests the official client
sends per streamed run, each with the minimum durable write:

- ``POST /threads``: one autocommit ``INSERT`` of the thread row, then its JSON;
- ``POST /threads/{id}/runs/stream``: one autocommit ``INSERT`` of the run row (committed before the
  stream starts, so a crash cannot lose a run the client was told about), then the graph streamed
  in the request's own task with ``durability="async"`` and our checkpointer (`bench/floor.py`), each
  chunk written as its own SSE event, then one ``UPDATE`` of the run row committed before the stream
  closes (the client is told the run ended only once that is durable);
- ``GET /threads/{id}/runs/{run_id}``: one ``SELECT`` (the client's check after a stream that carried
  a ``Location`` and no ``end`` event, as the reference's streams do).

No real server could skip any of it and keep the durability contract of issue 9, item 5, so
`ours / floor-http` is the overhead of everything else ours does (the queue and its lease, auth,
tenant scoping, the broker, the thread stream, metrics). Started by ``--start floor-http`` as
``python -m bench.floor_http --port N --database URL`` on a fresh database; never a product.
"""

from __future__ import annotations

import argparse
import asyncio
import uuid
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from importlib import metadata
from typing import Any

import orjson
import uvicorn
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from bench.floor import DURABILITY, compiled_graphs, floor_pool
from bench.servers import Target, start_and_wait
from cogni_ai_core.wire_json import wire_default
from testsupport import ManagedProcess, free_port, fresh_database

KIND = "floor behind HTTP"
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

SCHEMA = (
    "CREATE TABLE IF NOT EXISTS floor_threads (thread_id uuid PRIMARY KEY, metadata jsonb NOT NULL,"
    " created_at timestamptz NOT NULL DEFAULT now())",
    "CREATE TABLE IF NOT EXISTS floor_runs (run_id uuid PRIMARY KEY, thread_id uuid NOT NULL"
    " REFERENCES floor_threads ON DELETE CASCADE, status text NOT NULL,"
    " created_at timestamptz NOT NULL DEFAULT now(), updated_at timestamptz NOT NULL DEFAULT now())",
)
INSERT_THREAD = "INSERT INTO floor_threads (thread_id, metadata) VALUES (%s, %s) RETURNING created_at"
INSERT_RUN = "INSERT INTO floor_runs (run_id, thread_id, status) VALUES (%s, %s, 'running')"
END_RUN = "UPDATE floor_runs SET status = %s, updated_at = now() WHERE run_id = %s"
GET_RUN = (
    "SELECT run_id, thread_id, status, created_at, updated_at FROM floor_runs WHERE run_id = %s AND thread_id = %s"
)
WIRE_MODES = {"values": "values", "messages-tuple": "messages", "updates": "updates"}


def _json(value: Any) -> bytes:
    return orjson.dumps(value, default=wire_default)


class FloorApp:
    """The raw ASGI app; graphs and pool are set up by ``serve`` before the first request."""

    def __init__(self, pool: AsyncConnectionPool[Any], graphs: dict[str, Any]) -> None:
        self.pool = pool
        self.graphs = graphs

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        parts = scope["path"].strip("/").split("/")
        method = scope["method"]
        if method == "GET" and parts == ["ok"]:
            await _respond(send, 200, b'{"ok":true}')
        elif method == "POST" and parts == ["threads"]:
            await self.create_thread(await _body(receive), send)
        elif method == "POST" and len(parts) == 4 and parts[0] == "threads" and parts[2:] == ["runs", "stream"]:
            await self.stream_run(parts[1], await _body(receive), send)
        elif method == "GET" and len(parts) == 4 and parts[0] == "threads" and parts[2] == "runs":
            await self.get_run(parts[1], parts[3], send)
        else:
            await _respond(send, 404, b'{"detail":"not served by the floor"}')

    async def create_thread(self, body: dict[str, Any], send: Send) -> None:
        thread_id, metadata_ = str(uuid.uuid4()), body.get("metadata") or {}
        async with self.pool.connection() as conn:
            row = await (await conn.execute(INSERT_THREAD, (thread_id, Jsonb(metadata_)))).fetchone()
        created = row["created_at"].isoformat() if row else None
        thread = {"thread_id": thread_id, "created_at": created, "updated_at": created, "metadata": metadata_}
        await _respond(send, 200, _json({**thread, "status": "idle", "values": None, "interrupts": {}}))

    async def stream_run(self, thread_id: str, body: dict[str, Any], send: Send) -> None:
        graph = self.graphs.get(str(body.get("assistant_id")))
        if graph is None:
            await _respond(send, 404, b'{"detail":"unknown assistant"}')
            return
        run_id = str(uuid.uuid4())
        async with self.pool.connection() as conn:
            await conn.execute(INSERT_RUN, (run_id, thread_id))
        modes = body.get("stream_mode") or ["values"]
        modes = [modes] if isinstance(modes, str) else modes
        location = f"/threads/{thread_id}/runs/{run_id}/stream".encode()  # as ours and the reference
        headers = [(b"content-type", b"text/event-stream"), (b"location", location)]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await _event(send, "metadata", _json({"run_id": run_id, "attempt": 1}))
        configurable = {**((body.get("config") or {}).get("configurable") or {}), "thread_id": thread_id}
        status = "success"
        try:
            async for mode, chunk in graph.astream(
                body.get("input"),
                {"configurable": configurable},
                stream_mode=sorted({WIRE_MODES[m] for m in modes}),
                durability=DURABILITY,
            ):
                await _event(send, mode, _json(list(chunk) if mode == "messages" else chunk))
        except Exception as exc:  # the run's error, as a server reports it
            status = "error"
            await _event(send, "error", _json({"error": type(exc).__name__, "message": str(exc)}))
        async with self.pool.connection() as conn:
            await conn.execute(END_RUN, (status, run_id))
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def get_run(self, thread_id: str, run_id: str, send: Send) -> None:
        async with self.pool.connection() as conn:
            row = await (await conn.execute(GET_RUN, (run_id, thread_id))).fetchone()
        if row is None:
            await _respond(send, 404, b'{"detail":"run not found"}')
            return
        await _respond(send, 200, _json({k: str(v) if k.endswith("_id") else v for k, v in row.items()}))


async def _body(receive: Receive) -> dict[str, Any]:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            break
    data = b"".join(chunks)
    parsed = orjson.loads(data) if data else {}
    return parsed if isinstance(parsed, dict) else {}


async def _respond(send: Send, status: int, body: bytes) -> None:
    await send({"type": "http.response.start", "status": status, "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": body})


async def _event(send: Send, event: str, data: bytes) -> None:
    await send(
        {
            "type": "http.response.body",
            "body": b"event: " + event.encode() + b"\ndata: " + data + b"\n\n",
            "more_body": True,
        }
    )


async def _serve(port: int, database_url: str) -> None:
    async with floor_pool(database_url) as pool:
        async with pool.connection() as conn:
            for statement in SCHEMA:
                await conn.execute(statement)
        app = FloorApp(pool, await compiled_graphs(pool))  # our checkpointer, as the in-process floor's
        config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)
        await uvicorn.Server(config).serve()


@contextmanager
def floor_http(_llm_base_url: str) -> Iterator[Target]:
    """The app in its own process on a fresh database, measured through the SDK like a server."""
    port = free_port()
    with fresh_database("floor_http_bench") as database_url:
        proc = ManagedProcess.python_module(
            "bench.floor_http", "--port", str(port), "--database", database_url, name="bench-floor-http"
        )
        start_and_wait(proc, f"http://127.0.0.1:{port}/ok")
        try:
            yield Target(
                name="floor-http",
                url=f"http://127.0.0.1:{port}",
                kind=KIND,
                details={
                    "langgraph": metadata.version("langgraph"),
                    "uvicorn": metadata.version("uvicorn"),
                    "checkpointer": "PooledPostgresSaver (ours: no lock)",
                    "durability": DURABILITY,
                    "storage": "postgres (fresh database)",
                },
                pid=proc.proc.pid,
            )
        finally:
            proc.stop()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.floor_http", description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--database", required=True, help="Postgres URL (the bench gives a fresh database)")
    args = parser.parse_args()
    try:
        import uvloop  # ours serves on uvloop (COGNI_EVENT_LOOP=auto): the same loop here
    except ImportError:
        asyncio.run(_serve(args.port, args.database))
    else:
        uvloop.run(_serve(args.port, args.database))


if __name__ == "__main__":
    main()
