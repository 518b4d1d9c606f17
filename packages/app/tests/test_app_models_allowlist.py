"""ModelAllowlist against a local fake of LiteLLM's /model/info that can be switched to fail."""

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from prometheus_client import REGISTRY
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from cogni_app.models import ModelAllowlist, ModelAllowlistUnavailable, UnknownModel
from testsupport import free_port, serve_asgi

MASTER_KEY = "sk-test-master"


def entry(alias: str, upstream: str, **info: Any) -> dict[str, Any]:
    return {
        "model_name": alias,
        "litellm_params": {"model": upstream, "api_base": "http://127.0.0.1:1/v1"},
        "model_info": {"id": f"id-{alias}", "db_model": False, **info},
    }


@dataclass
class FakeLiteLLM:
    """A /model/info endpoint whose answer and health tests control."""

    data: list[dict[str, Any]] = field(
        default_factory=lambda: [
            entry("gpt-4o-mini", "openai/gpt-4o-mini", display_name="GPT-4o mini", is_default=True, is_free=False),
            entry("free-chat", "openai/mock-free", display_name="Free chat", is_free=True, is_default=False),
        ]
    )
    failing: bool = False
    requests: int = 0

    async def model_info(self, request: Request) -> JSONResponse:
        self.requests += 1
        if request.headers.get("authorization") != f"Bearer {MASTER_KEY}":
            return JSONResponse({"error": "unauthorized"}, status_code=401)
        if self.failing:
            return JSONResponse({"error": "down"}, status_code=503)
        return JSONResponse({"data": self.data})


@pytest.fixture
def fake() -> Iterator[tuple[FakeLiteLLM, str]]:
    state = FakeLiteLLM()
    with serve_asgi(Starlette(routes=[Route("/model/info", state.model_info)]), lifespan="off") as url:
        yield state, url


def failures() -> float:
    return REGISTRY.get_sample_value("cogni_model_allowlist_refresh_failures_total") or 0.0


async def test_lists_aliases_with_flags_and_resolves(fake: tuple[FakeLiteLLM, str]) -> None:
    _, url = fake
    allowlist = ModelAllowlist(url, MASTER_KEY, refresh_seconds=60)
    await allowlist.start()
    try:
        assert [(m.id, m.display_name, m.is_free, m.is_default) for m in allowlist.models()] == [
            ("gpt-4o-mini", "GPT-4o mini", False, True),
            ("free-chat", "Free chat", True, False),
        ]
        assert allowlist.default_model().id == "gpt-4o-mini"
        assert allowlist.resolve(None).id == "gpt-4o-mini"
        assert allowlist.resolve("free-chat").is_free
        with pytest.raises(UnknownModel) as unknown:
            allowlist.resolve("gpt-5-ultra")
        assert (unknown.value.requested, unknown.value.default_model_id) == ("gpt-5-ultra", "gpt-4o-mini")
        assert allowlist.is_free("free-chat") and not allowlist.is_free("gpt-4o-mini")
        assert allowlist.is_free("mock-free")  # the upstream name LiteLLM reports for the free alias
        assert not allowlist.is_free("unknown-model") and not allowlist.is_free(None)
    finally:
        await allowlist.stop()


async def test_refresh_picks_up_changes_and_survives_outage(fake: tuple[FakeLiteLLM, str]) -> None:
    state, url = fake
    allowlist = ModelAllowlist(url, MASTER_KEY, refresh_seconds=0.1)
    await allowlist.start()
    try:
        state.data.append(entry("gpt-4o", "openai/gpt-4o", display_name="GPT-4o"))
        await wait_until(lambda: len(allowlist.models()) == 3)
        assert allowlist.resolve("gpt-4o").display_name == "GPT-4o"

        before = failures()
        state.failing = True
        seen = state.requests
        await wait_until(lambda: state.requests >= seen + 3)  # several failed refreshes
        assert failures() >= before + 2
        assert [m.id for m in allowlist.models()] == ["gpt-4o-mini", "free-chat", "gpt-4o"]  # last good list
        assert allowlist.resolve(None).id == "gpt-4o-mini"

        state.failing = False
        state.data.pop()
        await wait_until(lambda: len(allowlist.models()) == 2)
    finally:
        await allowlist.stop()


async def test_first_start_retries_then_succeeds(fake: tuple[FakeLiteLLM, str]) -> None:
    state, url = fake
    state.failing = True
    allowlist = ModelAllowlist(url, MASTER_KEY, start_timeout_seconds=10)

    async def recover() -> None:
        await asyncio.sleep(0.5)
        state.failing = False

    recovery = asyncio.create_task(recover())
    await allowlist.start()
    await recovery
    try:
        assert state.requests >= 2
        assert allowlist.default_model().id == "gpt-4o-mini"
    finally:
        await allowlist.stop()


async def test_first_start_fails_clearly_when_never_reachable(fake: tuple[FakeLiteLLM, str]) -> None:
    state, url = fake
    state.failing = True
    allowlist = ModelAllowlist(url, MASTER_KEY, start_timeout_seconds=0.6)
    with pytest.raises(ModelAllowlistUnavailable, match="no model list"):
        await allowlist.start()
    with pytest.raises(ModelAllowlistUnavailable):
        allowlist.models()
    # Wrong key is a failure too, never an empty allowlist.
    state.failing = False
    wrong = ModelAllowlist(url, "sk-wrong", start_timeout_seconds=0.3)
    with pytest.raises(ModelAllowlistUnavailable):
        await wrong.start()
    # Nobody listening at all.
    closed = ModelAllowlist(f"http://127.0.0.1:{free_port()}", MASTER_KEY, start_timeout_seconds=0.3)
    with pytest.raises(ModelAllowlistUnavailable):
        await closed.start()


async def wait_until(predicate: Any, within: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not predicate():
        assert loop.time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)
