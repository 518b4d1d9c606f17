"""Custom auth from langgraph.json (``auth.path``), against a real server and the official client.

The fixture project (``fixtures/custom_auth``) authenticates by an ``x-user-token`` header and scopes
threads, assistants and crons to their ``owner`` metadata, the store to the user's namespace; its
``alice-reader`` token is alice with read permission only.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from langgraph_sdk import get_client
from langgraph_sdk.client import LangGraphClient
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from cogni_server.auth.custom import AuthConfigError, read_auth_config
from cogni_server.services.authz import matches, search_metadata
from testsupport import ManagedProcess, free_port, fresh_database

from .conftest import start_server

pytestmark = pytest.mark.integration
PROJECT = Path(__file__).resolve().parent.parent / "fixtures" / "custom_auth" / "langgraph.json"


@pytest.fixture(scope="module")
def auth_server() -> Iterator[str]:
    with fresh_database("cogni_server_custom_auth") as db:
        port = free_port()
        # the auth file replaces the built-in modes: COGNI_AUTH_MODE stays at its default
        proc: ManagedProcess = start_server(
            db, port, name="custom-auth-server", project=PROJECT, COGNI_AUTH_MODE="none", COGNI_API_KEYS=""
        )
        try:
            yield f"http://127.0.0.1:{port}"
        finally:
            proc.stop()


def _client(url: str, token: str | None) -> LangGraphClient:
    return get_client(url=url, api_key=None, headers={"x-user-token": token} if token else {})


@pytest.fixture
async def users(auth_server: str) -> AsyncIterator[dict[str, LangGraphClient]]:
    clients = {
        "alice": _client(auth_server, "alice-token"),
        "reader": _client(auth_server, "alice-reader"),
        "bob": _client(auth_server, "bob-token"),
        "nobody": _client(auth_server, None),
    }
    try:
        yield clients
    finally:
        for c in clients.values():
            await c.aclose()


async def _status(coro: Any) -> tuple[int, str]:
    with pytest.raises(httpx.HTTPStatusError) as info:
        await coro
    response = info.value.response
    return response.status_code, response.json().get("detail", "")


async def test_authenticate_handler_decides_who_calls(users: dict[str, LangGraphClient]) -> None:
    status, detail = await _status(users["nobody"].threads.search())
    assert (status, detail) == (401, "no x-user-token on POST /threads/search")  # its HTTPException, as raised
    bad = _client(str(users["alice"].http.client.base_url), "forged")
    try:
        assert await _status(bad.assistants.search()) == (401, "unknown user token")
    finally:
        await bad.aclose()


async def test_threads_are_stamped_filtered_and_denied(users: dict[str, LangGraphClient]) -> None:
    alice, reader, bob = users["alice"], users["reader"], users["bob"]
    mine = await alice.threads.create(metadata={"topic": "x"})
    assert mine["metadata"]["owner"] == "alice"  # the create handler added it
    # alice's tenant holds a thread whose owner is someone else: her read filter hides it
    other = await alice.threads.create(metadata={"owner": "carol"})
    found = {t["thread_id"] for t in await alice.threads.search(limit=100)}
    assert mine["thread_id"] in found and other["thread_id"] not in found
    assert await alice.threads.count() == len(found)
    assert (await alice.threads.search(metadata={"owner": "carol"})) == []  # the caller's filter AND the handler's
    assert (await _status(alice.threads.get(other["thread_id"])))[0] == 404
    assert (await _status(alice.threads.create(thread_id=other["thread_id"], if_exists="do_nothing")))[0] == 404
    assert (await _status(alice.threads.update(other["thread_id"], metadata={"a": 1})))[0] == 404
    assert (await _status(alice.threads.delete(other["thread_id"])))[0] == 404
    assert (await _status(alice.threads.get_state(other["thread_id"])))[0] == 404
    # another identity is another tenant: nothing of alice's exists for bob
    assert (await _status(bob.threads.get(mine["thread_id"])))[0] == 404
    assert mine["thread_id"] not in {t["thread_id"] for t in await bob.threads.search(limit=100)}
    # the reader is alice without write permission: she sees alice's thread but may not change it
    assert (await reader.threads.get(mine["thread_id"]))["thread_id"] == mine["thread_id"]
    assert await _status(reader.threads.create()) == (403, "alice may not write")
    assert await _status(reader.threads.delete(mine["thread_id"])) == (403, "alice may not write")
    await alice.threads.delete(mine["thread_id"])


async def test_runs_see_the_user_and_follow_the_thread(users: dict[str, LangGraphClient]) -> None:
    alice, reader = users["alice"], users["reader"]
    thread = await alice.threads.create()
    out = await alice.runs.wait(thread["thread_id"], "whoami", input={"question": "who?"})
    assert out["identity"] == out["user_id"] == "alice"
    assert out["team"] == "red" and out["permissions"] == ["read", "write"]
    assert out["billing"] == "alice"  # the run bills the authenticated identity, whatever the config says
    runs = await alice.runs.list(thread["thread_id"])
    assert runs and runs[0]["metadata"]["started_by"] == "alice"  # create_run's handler set it
    # a stateless run sees the user too
    assert (await alice.runs.wait(None, "whoami", input={}))["identity"] == "alice"
    # create_run returning False: 403
    status, _ = await _status(reader.runs.create(thread["thread_id"], "whoami", input={}))
    assert status == 403
    assert (await reader.runs.list(thread["thread_id"]))[0]["run_id"] == runs[0]["run_id"]  # reading is allowed
    # runs of a thread the filter hides are hidden with it
    hidden = await alice.threads.create(metadata={"owner": "carol"})
    assert (await _status(alice.runs.create(hidden["thread_id"], "whoami", input={})))[0] == 404
    assert (await _status(alice.runs.list(hidden["thread_id"])))[0] == 404
    # a client cannot pretend to be someone else through the config
    spoofed = await alice.runs.wait(
        None, "whoami", input={}, config={"configurable": {"langgraph_auth_user_id": "mallory"}}
    )
    assert spoofed["user_id"] == "alice"


async def test_assistants_are_stamped_filtered_and_denied(users: dict[str, LangGraphClient]) -> None:
    alice, reader, bob = users["alice"], users["reader"], users["bob"]
    created = await alice.assistants.create("whoami", name="mine", metadata={"purpose": "test"})
    assert created["metadata"] == {"purpose": "test", "owner": "alice"}
    found = await alice.assistants.search(limit=100)
    assert [a["assistant_id"] for a in found] == [created["assistant_id"]]  # system assistants have no owner
    assert await alice.assistants.count() == 1
    assert (await alice.assistants.get(created["assistant_id"]))["name"] == "mine"
    assert (await alice.assistants.get_schemas(created["assistant_id"]))["graph_id"] == "whoami"
    assert (await _status(bob.assistants.get(created["assistant_id"])))[0] == 404
    assert await _status(reader.assistants.update(created["assistant_id"], name="x")) == (403, "alice may not write")
    status, detail = await _status(alice.assistants.delete(created["assistant_id"]))  # its handler returns False
    assert status == 403 and "delete assistants" in detail
    assert (await alice.assistants.update(created["assistant_id"], name="renamed"))["name"] == "renamed"


async def test_crons_are_stamped_filtered_and_denied(users: dict[str, LangGraphClient]) -> None:
    alice, reader, bob = users["alice"], users["reader"], users["bob"]
    thread = await alice.threads.create()
    cron = await alice.crons.create_for_thread(thread["thread_id"], "whoami", schedule="0 0 1 1 *", input={})
    carol = await alice.crons.create("whoami", schedule="0 0 1 1 *", input={}, metadata={"owner": "carol"})
    try:
        assert cron["metadata"]["owner"] == "alice"
        # its runs will run as alice (a snapshot of the user, stored with the schedule)
        assert cron["payload"]["config"]["configurable"]["langgraph_auth_user_id"] == "alice"
        found = {c["cron_id"] for c in await alice.crons.search(limit=100)}
        assert cron["cron_id"] in found and carol["cron_id"] not in found
        assert await alice.crons.count() == len(found)
        assert await _status(reader.crons.create("whoami", schedule="0 0 1 1 *")) == (403, "alice may not write")
        assert cron["cron_id"] not in {c["cron_id"] for c in await bob.crons.search(limit=100)}
        assert (await _status(bob.crons.delete(cron["cron_id"])))[0] == 404
        assert (await _status(alice.crons.delete(carol["cron_id"])))[0] == 404  # filtered out: as if absent
    finally:
        await alice.crons.delete(cron["cron_id"])


async def test_store_namespace_is_rewritten_per_user(users: dict[str, LangGraphClient]) -> None:
    alice, reader, bob = users["alice"], users["reader"], users["bob"]
    label = f"notes-{uuid.uuid4().hex[:8]}"
    await alice.store.put_item([label], "k", {"text": "alice's"})
    item = await alice.store.get_item([label], "k")
    assert item is not None and item["namespace"] == ["alice", label] and item["value"] == {"text": "alice's"}
    assert await bob.store.get_item([label], "k") is None  # bob's namespace is ("bob", label)
    found = await alice.store.search_items([label])
    assert [i["key"] for i in found["items"]] == ["k"]
    spaces = (await alice.store.list_namespaces(prefix=[label]))["namespaces"]
    assert spaces == [["alice", label]]
    assert await _status(reader.store.put_item([label], "k", {"x": 1})) == (403, "readers may not change the store")
    assert (await reader.store.get_item([label], "k")) is not None  # reading is allowed
    await alice.store.delete_item([label], "k")
    assert await alice.store.get_item([label], "k") is None


async def test_thread_streaming_commands_apply_the_same_checks(
    auth_server: str, users: dict[str, LangGraphClient]
) -> None:
    alice = users["alice"]
    thread = await alice.threads.create()
    hidden = await alice.threads.create(metadata={"owner": "carol"})
    start = {"id": 1, "method": "run.start", "params": {"assistant_id": "whoami", "input": {}}}
    read = {"id": 2, "method": "state.get", "params": {}}

    async with httpx.AsyncClient(base_url=auth_server, timeout=30) as c:
        r = await c.post(f"/threads/{thread['thread_id']}/commands", json=start)  # no token
        assert r.status_code == 401
        reader = {"x-user-token": "alice-reader"}
        r = await c.post(f"/threads/{thread['thread_id']}/commands", json=start, headers=reader)
        assert r.status_code == 200 and r.json()["error"] == "permission_denied"
        assert r.json()["message"] == "Forbidden: not allowed to create_run threads"  # its handler said False
        r = await c.post(f"/threads/{thread['thread_id']}/commands", json=read, headers=reader)
        assert r.status_code == 200 and r.json()["type"] == "success"
        owner = {"x-user-token": "alice-token"}
        for command in (start, read):
            r = await c.post(f"/threads/{hidden['thread_id']}/commands", json=command, headers=owner)
            assert r.status_code == 404, command
        r = await c.post(f"/threads/{hidden['thread_id']}/stream/events", json={"channels": ["values"]}, headers=owner)
        assert r.status_code == 404
        r = await c.post(f"/threads/{thread['thread_id']}/stream/events", json={"channels": ["values"]})
        assert r.status_code == 401

    # the official client's thread session runs as the user
    async with alice.threads.stream(assistant_id="whoami") as session:
        await session.run.start(input={"question": "who?"})
        output = await session.output
    assert output["identity"] == "alice"


async def test_openapi_shows_the_configured_security(auth_server: str) -> None:
    async with httpx.AsyncClient(base_url=auth_server) as c:
        schema = (await c.get("/openapi.json")).json()
    assert schema["components"]["securitySchemes"]["userToken"]["name"] == "x-user-token"
    assert schema["security"] == [{"userToken": []}]


@pytest.mark.parametrize(
    ("block", "named"),
    [
        ({"path": "./auth.py:auth", "cache": {"ttl_seconds": 60}}, "cache"),
        ({"path": "./auth.py:auth", "disable_studio_auth": False}, "disable_studio_auth"),
        ({"path": "./auth.py:auth", "openapi": {"paths": {}}}, "openapi"),
        ({"path": "auth.py"}, "path"),
    ],
)
def test_unsupported_auth_keys_are_refused(block: dict[str, Any], named: str) -> None:
    with pytest.raises(AuthConfigError, match=named):
        read_auth_config({"auth": block})


def test_auth_file_and_builtin_mode_together_fail_at_start_up() -> None:
    conflict = pytest.raises(RuntimeError, match="COGNI_AUTH_MODE is 'api_key'")  # api_key mode from server_env
    with fresh_database("cogni_server_custom_auth_conflict") as db, conflict:
        start_server(db, free_port(), name="conflicting-auth", project=PROJECT)


async def test_thread_websocket_applies_the_same_checks(auth_server: str, users: dict[str, LangGraphClient]) -> None:
    alice = users["alice"]
    thread = await alice.threads.create()
    hidden = await alice.threads.create(metadata={"owner": "carol"})
    base = auth_server.replace("http://", "ws://")
    start = {"id": 1, "method": "run.start", "params": {"assistant_id": "whoami", "input": {}}}

    async def reply(thread_id: str, headers: dict[str, str]) -> dict[str, Any] | int | None:
        """The first reply to run.start, or the close code of a refused socket."""
        async with connect(f"{base}/threads/{thread_id}/stream/events", additional_headers=headers) as ws:
            with contextlib.suppress(ConnectionClosed):
                await ws.send(json.dumps(start))
                while True:
                    message = json.loads(await asyncio.wait_for(ws.recv(), 10))
                    if message.get("id") == 1:
                        return message  # type: ignore[no-any-return]
            return ws.close_code

    assert await reply(thread["thread_id"], {}) == 4401
    assert await reply(hidden["thread_id"], {"x-user-token": "alice-token"}) == 4404  # filtered out: as if absent
    denied = await reply(thread["thread_id"], {"x-user-token": "alice-reader"})
    assert isinstance(denied, dict) and denied["error"] == "permission_denied"
    started = await reply(thread["thread_id"], {"x-user-token": "alice-token"})
    assert isinstance(started, dict) and started["type"] == "success"


def test_filter_operators_match_and_combine_with_the_callers_filter() -> None:
    row = {"owner": "alice", "teams": ["red", "blue"], "n": 1}
    assert matches(row, {"owner": "alice", "teams": {"$contains": "red"}})
    assert matches(row, {"owner": {"$eq": "alice"}, "teams": {"$contains": ["blue", "red"]}})
    assert not matches(row, {"teams": {"$contains": "green"}})
    assert not matches(row, {"owner": "bob"})
    assert not matches({"owner": ["alice"]}, {"owner": "alice"})  # equal means equal, not contained
    # searches: one JSONB containment that means "the caller's filter AND the handler's"
    assert search_metadata({"n": 1}, {"owner": "alice"}) == ({"n": 1, "owner": "alice"}, True)
    assert search_metadata({"teams": ["red"]}, {"teams": {"$contains": "blue"}}) == ({"teams": ["red", "blue"]}, True)
    assert search_metadata({"owner": "carol"}, {"owner": "alice"}) == (None, False)  # nothing can match both
    assert search_metadata(None, None) == (None, True)


def test_every_user_shape_the_reference_accepts() -> None:
    from langgraph_sdk.auth.types import StudioUser

    from cogni_server.auth.custom import normalize_user

    assert normalize_user("alice").identity == "alice"
    user = normalize_user({"identity": "bob", "permissions": ["read"], "token": "t"})
    assert (user.identity, user.permissions, user["token"], user.token, user.display_name) == (
        "bob",
        ["read"],
        "t",
        "t",
        "bob",
    )
    studio = normalize_user(StudioUser("carol", is_authenticated=True))
    assert (studio.identity, studio.permissions) == ("carol", ["authenticated"])
    for bad in ({"permissions": []}, {"identity": ""}, 42, {"identity": "x", "permissions": "read"}):
        with pytest.raises(TypeError):
            normalize_user(bad)


async def _mcp_call(url: str, token: str, tool: str | None, arguments: dict[str, Any]) -> tuple[set[str], Any]:
    """The tool names the user sees and, when ``tool`` is given, the result of calling it."""
    import httpx2
    from mcp.client.session import ClientSession
    from mcp.client.streamable_http import streamable_http_client

    async with (
        httpx2.AsyncClient(headers={"x-user-token": token}, timeout=30) as http,
        streamable_http_client(f"{url}/mcp", http_client=http) as (read, write),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        names = {t.name for t in (await session.list_tools()).tools}
        return names, (await session.call_tool(tool, arguments) if tool else None)


async def test_mcp_and_a2a_go_through_the_handlers(auth_server: str, users: dict[str, LangGraphClient]) -> None:
    name = f"who-{uuid.uuid4().hex[:8]}"
    mine = await users["alice"].assistants.create("whoami", name=name)  # stamped owner=alice by the handler
    names, result = await _mcp_call(auth_server, "alice-token", name, {"question": "who?"})
    assert name in names and "whoami" not in names  # the unowned system assistant is filtered, as in search
    assert not result.is_error and result.structured_content["identity"] == "alice"
    _, refused = await _mcp_call(auth_server, "alice-reader", name, {"question": "who?"})
    assert refused.is_error and "not allowed to create_run" in refused.content[0].text

    def rpc(method: str, params: Any) -> dict[str, Any]:
        return {"jsonrpc": "2.0", "id": "r1", "method": method, "params": params}

    message = {"message": {"role": "user", "messageId": "m1", "parts": [{"kind": "data", "data": {"question": "?"}}]}}
    endpoint = f"{auth_server}/a2a/{mine['assistant_id']}"
    tokens = {who: {"x-user-token": t} for who, t in (("alice", "alice-token"), ("reader", "alice-reader"))}
    async with httpx.AsyncClient(timeout=30) as http:
        task = (await http.post(endpoint, json=rpc("message/send", message), headers=tokens["alice"])).json()["result"]
        assert task["status"]["state"] == "completed", task
        thread = await users["alice"].threads.get(task["contextId"])
        assert thread["metadata"]["owner"] == "alice"  # the handler's metadata reached the thread the task made
        denied = await http.post(endpoint, json=rpc("message/send", message), headers=tokens["reader"])
        assert denied.status_code == 403
        read = (await http.post(endpoint, json=rpc("tasks/get", {"id": task["id"]}), headers=tokens["reader"])).json()
        assert read["result"]["id"] == task["id"]  # readers may read
        cancel = await http.post(endpoint, json=rpc("tasks/cancel", {"id": task["id"]}), headers=tokens["reader"])
        assert cancel.status_code == 403 and "may not write" in cancel.json()["detail"]
        card = await http.get(
            f"{auth_server}/.well-known/agent-card.json", params={"assistant_id": "whoami"}, headers=tokens["alice"]
        )
        assert card.status_code == 404  # assistants.read filters the unowned system assistant
