"""A background writer: the request path only enqueues; one thread batches rows into Postgres.

Database errors are logged and retried with backoff while the process runs; nothing is ever raised
into LiteLLM. When the queue is full (a long outage), new rows are dropped with an error log naming
the call id, so memory stays bounded; the reconciler treats a missing row like a late one.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import threading
import time

import psycopg

from cogni_litellm_sink.mapping import SpendRow
from cogni_litellm_sink.schema import DDL, LOCK_KEY, UPSERT

log = logging.getLogger("cogni_litellm_sink")

DATABASE_URL_ENV = "COGNI_SPEND_SINK_DATABASE_URL"
_STOP = object()


class SpendLogWriter:
    """Owns one connection and one daemon thread; started lazily on the first row."""

    def __init__(
        self,
        database_url: str | None = None,
        *,
        max_queue: int = 10_000,
        batch_size: int = 200,
        connect_timeout: float = 5.0,
        max_backoff: float = 5.0,
    ) -> None:
        self._explicit_url = database_url
        self._queue: queue.Queue[object] = queue.Queue(maxsize=max_queue)
        self._batch_size = batch_size
        self._connect_timeout = connect_timeout
        self._max_backoff = max_backoff
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._pid = 0
        self._stopping = threading.Event()
        self._idle = threading.Condition()
        self._pending = 0
        self.written = 0
        self.dropped = 0

    @property
    def database_url(self) -> str | None:
        return self._explicit_url or os.environ.get(DATABASE_URL_ENV) or None

    def submit(self, row: SpendRow) -> bool:
        """Enqueue without blocking; False (and an error log) when the row had to be dropped."""
        if self.database_url is None:
            log.error("spend sink: %s is not set; dropping row %s", DATABASE_URL_ENV, row.call_id)
            self.dropped += 1
            return False
        self._ensure_thread()
        with self._idle:
            self._pending += 1
        try:
            self._queue.put_nowait(row)
        except queue.Full:
            with self._idle:
                self._pending -= 1
            self.dropped += 1
            log.error("spend sink: queue full, dropping row %s", row.call_id)
            return False
        return True

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every submitted row is written (or given up on); True when drained in time."""
        deadline = time.monotonic() + timeout
        with self._idle:
            while self._pending:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._idle.wait(remaining)
        return True

    def close(self, timeout: float = 5.0) -> None:
        """Flush what is queued, then stop the thread; the whole call is bounded by `timeout`."""
        thread = self._thread
        if thread is None or not thread.is_alive():
            return
        deadline = time.monotonic() + timeout
        self.flush(timeout)
        self._stopping.set()
        with contextlib.suppress(queue.Full):
            self._queue.put_nowait(_STOP)
        thread.join(timeout=max(deadline - time.monotonic(), 0.5))
        if self._pending:
            log.error("spend sink: closed with %d rows unwritten", self._pending)

    def _ensure_thread(self) -> None:
        if self._thread is not None and self._thread.is_alive() and self._pid == os.getpid():
            return
        with self._lock:
            if self._thread is not None and self._thread.is_alive() and self._pid == os.getpid():
                return
            self._stopping.clear()
            self._pid = os.getpid()
            self._thread = threading.Thread(target=self._run, name="cogni-spend-sink", daemon=True)
            self._thread.start()

    def _next_batch(self) -> list[SpendRow] | None:
        """Block for the first row, then take what else is queued; None means stop."""
        first = self._queue.get()
        if first is _STOP:
            return None
        batch = [first]
        while len(batch) < self._batch_size:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is _STOP:
                self._stopping.set()
                break
            batch.append(item)
        return batch  # type: ignore[return-value]

    def _done(self, count: int) -> None:
        with self._idle:
            self._pending -= count
            self._idle.notify_all()

    def _run(self) -> None:
        conn: psycopg.Connection[tuple[object, ...]] | None = None
        backoff = 0.1
        while True:
            batch = self._next_batch()
            if batch is None:
                break
            while True:
                try:
                    if conn is None or conn.closed:
                        conn = self._connect()
                    with conn.transaction(), conn.cursor() as cur:
                        cur.executemany(UPSERT, [row.values() for row in batch])
                    self.written += len(batch)
                    backoff = 0.1
                    break
                except Exception as exc:  # never let the sink thread die
                    log.error("spend sink: writing %d rows failed: %s", len(batch), exc)
                    if conn is not None:
                        conn.close()
                    conn = None
                    if self._stopping.is_set():
                        self.dropped += len(batch)
                        log.error("spend sink: stopping; dropped %s", [r.call_id for r in batch])
                        break
                    self._stopping.wait(backoff)  # close() cuts the backoff short
                    backoff = min(backoff * 2, self._max_backoff)
            self._done(len(batch))
            if self._stopping.is_set() and self._queue.empty():
                break
        if conn is not None:
            conn.close()

    def _connect(self) -> psycopg.Connection[tuple[object, ...]]:
        url = self.database_url
        if url is None:
            raise RuntimeError(f"{DATABASE_URL_ENV} is not set")
        conn = psycopg.connect(url, autocommit=True, connect_timeout=max(int(self._connect_timeout), 1))
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (LOCK_KEY,))
            conn.execute(DDL)
        return conn
