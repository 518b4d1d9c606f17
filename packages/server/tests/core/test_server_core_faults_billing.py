"""Charges follow the caller (issue 12): a run bills the authenticated tenant's account. A request
naming another account in ``config.configurable`` (``billingAccountId`` or the LiteLLM end user
``user``) is refused with 403 naming the field; an absent ``billingAccountId`` is the caller's."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import jwt
import pytest
from langgraph_sdk import get_client
from langgraph_sdk.client import LangGraphClient

from testsupport import free_port, fresh_database

from .faults_support import start_faults_server

SECRET = "faults-billing-test-secret-of-at-least-32-bytes"
AUDIENCE = "cogni-agent-server"


def _token(sub: str) -> str:
    now = int(time.time())
    return jwt.encode({"sub": sub, "aud": AUDIENCE, "iat": now, "exp": now + 300}, SECRET, algorithm="HS256")


@pytest.fixture(scope="module")
def jwt_server() -> Iterator[str]:
    with fresh_database("cogni_server_core_billing") as db:
        port = free_port()
        proc = start_faults_server(
            db, port, name="billing-jwt", COGNI_AUTH_MODE="jwt", COGNI_JWT_SECRET=SECRET, COGNI_JWT_AUDIENCE=AUDIENCE
        )
        try:
            yield f"http://127.0.0.1:{port}"
        finally:
            proc.stop()


@pytest.fixture
async def alice(jwt_server: str) -> AsyncIterator[LangGraphClient]:
    client = get_client(url=jwt_server, api_key=None, headers={"Authorization": f"Bearer {_token('alice')}"})
    try:
        yield client
    finally:
        await client.aclose()


async def _refused(call: Any, field: str) -> None:
    with pytest.raises(httpx.HTTPStatusError) as info:
        await call
    assert info.value.response.status_code == 403, info.value.response.text
    detail = info.value.response.json()["detail"]
    assert f"configurable.{field}" in detail and "bob" in detail and "alice" in detail


@pytest.mark.parametrize("field", ["billingAccountId", "user"])
async def test_naming_another_account_is_refused(alice: LangGraphClient, field: str) -> None:
    tid = (await alice.threads.create())["thread_id"]
    other = {"configurable": {field: "bob"}}
    await _refused(alice.runs.wait(tid, "billing_probe", input={}, config=other), field)
    await _refused(alice.runs.create(tid, "billing_probe", input={}, config=other), field)
    parts = alice.runs.stream(None, "billing_probe", input={}, config=other)
    await _refused(anext(parts), field)
    runs = await alice.runs.list(tid)
    assert runs == []  # nothing was queued, nothing billed


async def test_an_assistant_naming_another_account_cannot_run(alice: LangGraphClient) -> None:
    assistant = await alice.assistants.create("billing_probe", config={"configurable": {"billingAccountId": "bob"}})
    tid = (await alice.threads.create())["thread_id"]
    await _refused(alice.runs.wait(tid, assistant["assistant_id"], input={}), "billingAccountId")


async def test_the_graph_bills_the_token_subject(alice: LangGraphClient) -> None:
    tid = (await alice.threads.create())["thread_id"]
    out = await alice.runs.wait(tid, "billing_probe", input={}, config={"configurable": {"virtualKeyId": "vk-1"}})
    assert out["seen"] == {"billingAccountId": "alice", "user": None, "virtualKeyId": "vk-1"}
    # what the app sends (GraphRunConfig.to_configurable): its own account as account and end user
    mine = {"configurable": {"billingAccountId": "alice", "user": "alice", "virtualKeyId": "vk-1"}}
    out = await alice.runs.wait(tid, "billing_probe", input={}, config=mine)
    assert out["seen"] == mine["configurable"]
    run = (await alice.runs.list(tid))[0]
    assert run["kwargs"]["config"]["configurable"]["billingAccountId"] == "alice"
