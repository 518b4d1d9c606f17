"""The stream broker seam: what a run's event stream looks like to the API and the workers.

A run's events are published by the worker executing it and read by any number of subscribers
(the client that created the run, clients that join or reconnect with ``Last-Event-ID``). Event ids
are Redis stream ids, ``<millis>-<seq>``, strictly increasing per stream, so the clients' resume
logic works unchanged whichever broker is configured.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

CONTROL_ACTIONS = frozenset({"interrupt", "rollback"})
DEFAULT_RETENTION_SECONDS = 120.0
DEFAULT_MAX_EVENTS = 10_000
DEFAULT_IDLE_TTL_SECONDS = 3600.0
DEFAULT_OUTAGE_SECONDS = 30.0  # how long a broker outage only delays events (COGNI_BROKER_OUTAGE_SECONDS)


@dataclass(slots=True)
class StreamEvent:
    """One event of a run (or thread) stream; ``data`` is JSON bytes, ``id`` a ``<millis>-<seq>`` id.

    ``resumable`` says whether the publisher asked for a resumable stream: the SSE layer only writes
    an ``id:`` line for resumable events (the wire format of the reference server).
    """

    id: str
    event: str
    data: bytes
    resumable: bool = True


@runtime_checkable
class StreamBroker(Protocol):
    """Live event fan-out, replay for reconnecting clients, cancellation and worker wake-ups."""

    async def publish(
        self, run_id: str, event: str, data: bytes, *, resumable: bool = True, thread_id: str | None = None
    ) -> str:
        """Append an event to the run's stream (and to the thread's, if given); return its id."""
        ...

    async def end(self, run_id: str) -> None:
        """Mark the run's stream finished: subscribers drain and stop; retention clock starts."""
        ...

    def subscribe(self, run_id: str, *, last_event_id: str | None = None) -> AsyncIterator[StreamEvent]:
        """Events of the run: ``None`` from now on, ``"-1"`` replay all retained, ``"<id>"`` after id."""
        ...

    def subscribe_thread(self, thread_id: str, *, last_event_id: str | None = None) -> AsyncIterator[StreamEvent]:
        """Events of every run of the thread; never ends by itself (stop by closing the iterator)."""
        ...

    async def publish_control(self, run_id: str, action: str) -> None:
        """Ask the worker running ``run_id`` to stop: ``"interrupt"`` or ``"rollback"``."""
        ...

    async def wait_control(self, run_id: str) -> str:
        """Block until a control action for the run arrives (or already arrived); return it."""
        ...

    async def notify_run_pending(self) -> None:
        """Wake workers (in every process) because a run became claimable."""
        ...

    async def wait_run_pending(self, timeout: float) -> bool:  # noqa: ASYNC109 (contract signature)
        """Wait up to ``timeout`` seconds for a wake-up; True if one arrived (possibly earlier)."""
        ...

    async def forget(self, *, run_ids: list[str], thread_ids: list[str]) -> None:
        """Delete every retained event and control of these runs and threads (a tenant purge)."""
        ...

    async def close(self) -> None:
        """Release connections and background tasks; subscribers stop."""
        ...


def parse_event_id(event_id: str) -> tuple[int, int]:
    """``"<millis>-<seq>"`` -> ``(millis, seq)``; a bare ``"<millis>"`` means ``(millis, 0)``.

    Raises ValueError for anything else, so a garbage ``Last-Event-ID`` is a clear 4xx upstream.
    """
    millis, sep, seq = event_id.strip().partition("-")
    try:
        parsed = (int(millis), int(seq) if sep else 0)
    except ValueError:
        raise ValueError(f"invalid stream event id {event_id!r}: expected '<millis>-<seq>'") from None
    if parsed[0] < 0 or parsed[1] < 0:
        raise ValueError(f"invalid stream event id {event_id!r}: expected '<millis>-<seq>'")
    return parsed


def validate_control_action(action: str) -> None:
    """Reject unknown control actions loudly instead of sending something no worker understands."""
    if action not in CONTROL_ACTIONS:
        raise ValueError(f"unknown control action {action!r}; expected one of {sorted(CONTROL_ACTIONS)}")


class BrokerClosed(RuntimeError):
    """Raised by waits on a broker that has been closed (shutdown in progress)."""


class BrokerUnavailable(RuntimeError):
    """The broker stayed unreachable longer than its outage limit (``COGNI_BROKER_OUTAGE_SECONDS``)."""


class Outage:
    """One stretch of failed attempts to reach the broker: the backoff between retries, and the
    limit after which retrying stops (``failed`` raises BrokerUnavailable). ``ok`` ends it."""

    __slots__ = ("_delay", "limit", "since")

    MIN_DELAY = 0.05
    MAX_DELAY = 1.0

    def __init__(self, limit: float) -> None:
        self.limit = limit
        self.since: float | None = None
        self._delay = self.MIN_DELAY

    def failed(self, error: BaseException, what: str) -> float:
        """Record a failure; the seconds to wait before the next try, or BrokerUnavailable."""
        now = time.monotonic()
        if self.since is None:
            self.since = now
        if now - self.since >= self.limit:
            raise BrokerUnavailable(
                f"{what}: Redis unreachable for {now - self.since:.1f}s, past the limit of {self.limit:g}s"
                f" (COGNI_BROKER_OUTAGE_SECONDS): {error}"
            ) from error
        delay, self._delay = self._delay, min(self._delay * 2, self.MAX_DELAY)
        return delay

    def ok(self) -> None:
        self.since = None
        self._delay = self.MIN_DELAY


class ControlWaiters(dict[str, list[asyncio.Future[str]]]):
    """Futures of the workers waiting for a run's control message, by run id (both brokers keep one).

    A plain dict underneath, so an empty one compares equal to ``{}``: nothing per run is left behind.
    """

    def add(self, run_id: str) -> asyncio.Future[str]:
        """Register a future that ``deliver`` resolves with the run's next control action."""
        future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self.setdefault(run_id, []).append(future)
        return future

    def forget(self, run_id: str, future: asyncio.Future[str]) -> None:
        """Drop a finished or cancelled wait: one left behind per run would leak."""
        current = self.get(run_id)
        if current is not None:
            with contextlib.suppress(ValueError):
                current.remove(future)
            if not current:
                del self[run_id]

    def deliver(self, run_id: str, action: str) -> None:
        """Answer every wait on the run with ``action``."""
        for future in self.get(run_id, ()):
            if not future.done():
                future.set_result(action)

    def fail_all(self) -> None:
        """On close: every pending wait raises BrokerClosed instead of hanging."""
        for futures in self.values():
            for future in futures:
                if not future.done():
                    future.set_exception(BrokerClosed("broker closed while waiting for a control message"))


class PendingWakeup:
    """Level-triggered "a run is pending" signal: a wake-up nobody waited for is kept for the next wait.

    The event is only allocated when someone waits, and replaced after each wake-up.
    """

    __slots__ = ("_event", "_flag")

    def __init__(self) -> None:
        self._flag = False
        self._event: asyncio.Event | None = None

    def wake(self) -> None:
        self._flag = True
        if self._event is not None:
            self._event.set()
            self._event = None

    async def wait(self, timeout: float) -> bool:  # noqa: ASYNC109 (mirrors wait_run_pending)
        """Wait up to ``timeout`` seconds; True if a wake-up arrived (possibly before the call)."""
        if self._flag:
            self._flag = False
            return True
        if self._event is None:
            self._event = asyncio.Event()
        wakeup = self._event
        try:
            await asyncio.wait_for(wakeup.wait(), timeout)
        except TimeoutError:
            return False
        self._flag = False
        return True

    def release(self) -> None:
        """Let current waiters return (shutdown) without recording a wake-up."""
        if self._event is not None:
            self._event.set()
