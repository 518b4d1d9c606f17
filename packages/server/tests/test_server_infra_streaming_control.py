"""Control messages and run-pending wake-ups, against both brokers (across instances for Redis)."""

from __future__ import annotations

import asyncio

import pytest

from cogni_server.streaming import (
    BrokerClosed,
    StreamBroker,
)

from .streaming_helpers import (
    BrokerFactory,
    run_id,
)


async def test_control_reaches_a_waiting_worker(broker: StreamBroker, peer: StreamBroker) -> None:
    rid = run_id()
    waiter = asyncio.ensure_future(peer.wait_control(rid))
    await asyncio.sleep(0.2)
    assert not waiter.done()
    await broker.publish_control(rid, "rollback")
    assert await asyncio.wait_for(waiter, 3) == "rollback"


async def test_control_sent_before_the_worker_waits_is_not_lost(broker: StreamBroker, peer: StreamBroker) -> None:
    rid = run_id()
    await broker.publish_control(rid, "interrupt")
    assert await asyncio.wait_for(peer.wait_control(rid), 3) == "interrupt"
    other = asyncio.ensure_future(peer.wait_control(run_id()))
    await asyncio.sleep(0.2)
    assert not other.done(), "a control message leaked to another run"
    other.cancel()


async def test_abandoned_control_waits_leave_nothing_behind(broker: StreamBroker) -> None:
    """Every run waits for a control message and cancels the wait at its end: that must not leak."""
    for _ in range(50):
        waiter = asyncio.ensure_future(broker.wait_control(run_id()))
        await asyncio.sleep(0)
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
    await asyncio.sleep(0.05)
    assert broker._control_waiters == {}  # type: ignore[attr-defined]


async def test_close_releases_control_waiters(make_broker: BrokerFactory) -> None:
    broker = make_broker(shared=False)
    waiter = asyncio.ensure_future(broker.wait_control(run_id()))
    await asyncio.sleep(0.2)
    await broker.close()
    with pytest.raises(BrokerClosed):
        await asyncio.wait_for(waiter, 5)


async def test_unknown_control_action_is_refused(broker: StreamBroker) -> None:
    with pytest.raises(ValueError, match="unknown control action"):
        await broker.publish_control(run_id(), "explode")


async def test_run_pending_wakeups(broker: StreamBroker, peer: StreamBroker) -> None:
    assert await peer.wait_run_pending(0.2) is False
    waiters = [asyncio.ensure_future(peer.wait_run_pending(5)) for _ in range(3)]
    await asyncio.sleep(0.2)
    started = asyncio.get_running_loop().time()
    await broker.notify_run_pending()
    assert await asyncio.wait_for(asyncio.gather(*waiters), 5) == [True, True, True]
    assert asyncio.get_running_loop().time() - started < 1.0
    # a notification nobody was waiting for is kept for the next wait (no lost wake-up)
    await broker.notify_run_pending()
    await asyncio.sleep(0.2)
    assert await peer.wait_run_pending(0.5) is True
