"""Inputs that a schema fuzzer (schemathesis, run by hand against /openapi.json) found answering 500.
Each must be a clear 422 now; plus the query-list forms the JS client sends."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from .conftest import KEY_A, Server

BIG = 4024278356969863516258304  # beyond 64 bits
HUGE_OFFSET = 272808928138662343052250291011539959808


@pytest.fixture
async def http(server: Server) -> httpx.AsyncClient:
    async with httpx.AsyncClient(base_url=server.url, headers={"x-api-key": KEY_A}) as c:
        yield c  # type: ignore[misc]


async def _thread(http: httpx.AsyncClient) -> str:
    return str((await http.post("/threads", json={})).json()["thread_id"])


@pytest.mark.parametrize(
    ("path", "body", "detail"),
    [
        ("/threads", {"metadata": {"n": BIG}}, "64 bits"),
        ("/threads/count", {"metadata": {"n": BIG}}, "64 bits"),
        ("/threads/search", {"values": {"n": [BIG]}}, "64 bits"),
        ("/threads", {"metadata": {"key\x00": 1}}, "\\u0000"),
        ("/threads", {"metadata": {"text": "\ud952"}}, "surrogates"),
        ("/assistants/count", {"name": "P\x00"}, "NUL"),
        ("/assistants/search", {"graph_id": "echo", "offset": 43195548565106293721879417978880}, "offset"),
        ("/threads/search", {"offset": HUGE_OFFSET}, "offset"),
    ],
)
async def test_unstorable_values_are_422(http: httpx.AsyncClient, path: str, body: dict[str, Any], detail: str) -> None:
    # json.dumps escapes lone surrogates as \udXXX, as a fuzzer (or another language's client) may send
    r = await http.post(path, content=json.dumps(body), headers={"content-type": "application/json"})
    assert r.status_code == 422, r.text
    assert detail in r.json()["detail"]


async def test_unstorable_values_in_patch_and_run_creation(http: httpx.AsyncClient) -> None:
    tid = await _thread(http)
    r = await http.patch(f"/threads/{tid}", json={"metadata": {"bad\x00key": {"x": 1}}})
    assert r.status_code == 422 and "invalid value" in r.json()["detail"]
    r = await http.post(f"/threads/{tid}/runs", json={"assistant_id": "echo", "metadata": {"n": BIG}})
    assert r.status_code == 422 and "64 bits" in r.json()["detail"]
    assert (await http.get(f"/threads/{tid}")).json()["status"] == "idle"  # nothing was half-created


async def test_huge_offset_in_the_query_is_422(http: httpx.AsyncClient) -> None:
    tid = await _thread(http)
    r = await http.get(f"/threads/{tid}/runs", params={"offset": str(HUGE_OFFSET)})
    assert r.status_code == 422 and "offset" in r.json()["detail"]


async def test_query_lists_in_the_js_clients_json_form(http: httpx.AsyncClient) -> None:
    """The JS client sends ``?select=["a","b"]``, ``?stream_mode=["values"]``; the Python one repeats."""
    tid = await _thread(http)
    run = (await http.post(f"/threads/{tid}/runs/wait", json={"assistant_id": "echo", "input": {}})).json()
    assert run["count"] == 1
    r = await http.get(f"/threads/{tid}/runs", params={"select": '["run_id","status"]'})
    assert r.status_code == 200 and sorted(r.json()[0]) == ["run_id", "status"]
    r = await http.get(f"/threads/{tid}/runs", params=[("select", "run_id"), ("select", "status")])
    assert sorted(r.json()[0]) == ["run_id", "status"]
    run_id = r.json()[0]["run_id"]
    r = await http.get(f"/threads/{tid}/runs/{run_id}/stream", params={"stream_mode": '["values"]'})
    assert r.status_code == 200
    assert "event: values" in r.text and "event: updates" not in r.text
    r = await http.get(f"/threads/{tid}/runs/{run_id}/stream", params={"stream_mode": '["valuez"]'})
    assert r.status_code == 422 and "valuez" in r.json()["detail"]
    r = await http.get(f"/threads/{tid}/runs", params={"select": "[not json"})
    assert r.status_code == 422 and "select" in r.json()["detail"]
    r = await http.get(f"/threads/{tid}/state", params={"select": '["values"]'})
    assert r.status_code == 200 and list(r.json()) == ["values"]


async def test_patch_assistant_with_explicit_nulls_changes_nothing(http: httpx.AsyncClient) -> None:
    made = (await http.post("/assistants", json={"graph_id": "echo", "metadata": {"k": "v"}, "name": "n"})).json()
    body = {"metadata": None, "config": None, "context": None, "graph_id": None, "name": None}
    r = await http.patch(f"/assistants/{made['assistant_id']}", json=body)
    assert r.status_code == 200, r.text
    got = r.json()
    assert (got["metadata"], got["name"], got["graph_id"], got["version"]) == ({"k": "v"}, "n", "echo", 2)


async def test_bad_state_updates_are_422(http: httpx.AsyncClient) -> None:
    tid = await _thread(http)
    assert (await http.post(f"/threads/{tid}/runs/wait", json={"assistant_id": "echo", "input": {}})).status_code == 200
    r = await http.post(f"/threads/{tid}/state", json={"values": {"count": 5}, "as_node": "no-such-node"})
    assert r.status_code == 422 and "no-such-node" in r.json()["detail"]
    r = await http.post(f"/threads/{tid}/state", json={"values": True, "as_node": "respond"})
    assert r.status_code == 422 and "Expected dict" in r.json()["detail"]
    r = await http.post(f"/threads/{tid}/state", json={"values": {"count": 5}, "as_node": "respond"})
    assert r.status_code == 200
