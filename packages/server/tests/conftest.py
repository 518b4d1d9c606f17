"""Stream-broker fixtures for the test_server_infra_streaming_* modules.

Only these tests request them; the names do not clash with anything in core/conftest.py.
For Redis, ``peer`` is a second broker instance on the same key prefix (another server process in
production), so every control, wake-up and stream test also proves cross-instance delivery.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from cogni_server.streaming import InMemoryBroker, RedisBroker, StreamBroker

from .streaming_helpers import REDIS_URL, BrokerFactory, delete_prefixed_keys


@pytest.fixture(params=["memory", "redis"])
async def make_broker(request: pytest.FixtureRequest) -> AsyncIterator[BrokerFactory]:
    """Factory for brokers of the parametrised kind; Redis ones share one unique key prefix."""
    prefix = f"cogni_test_{uuid.uuid4().hex[:12]}"
    made: list[StreamBroker] = []
    memory: dict[str, InMemoryBroker] = {}

    def factory(*, shared: bool = True, **kwargs: Any) -> StreamBroker:
        if request.param == "memory":
            if shared and "one" in memory:
                return memory["one"]
            broker: StreamBroker = InMemoryBroker(**kwargs)
            memory.setdefault("one", broker)  # type: ignore[arg-type]
        else:
            broker = RedisBroker.from_url(REDIS_URL, key_prefix=prefix, **kwargs)
        made.append(broker)
        return broker

    try:
        yield factory
    finally:
        for broker in made:
            await broker.close()
        if request.param == "redis":
            await delete_prefixed_keys(prefix)


@pytest.fixture
def broker(make_broker: BrokerFactory) -> StreamBroker:
    return make_broker()


@pytest.fixture
def peer(make_broker: BrokerFactory) -> StreamBroker:
    """Another instance for Redis (a second process in production); the same one in memory."""
    return make_broker(shared=True)


@pytest.fixture
async def redis_prefix() -> AsyncIterator[str]:
    prefix = f"cogni_test_{uuid.uuid4().hex[:12]}"
    try:
        yield prefix
    finally:
        await delete_prefixed_keys(prefix)
