"""Bad input answers 4xx with a ``detail`` saying what is wrong."""

from __future__ import annotations

import httpx
import pytest

from .conftest import KEY_A, Server


@pytest.fixture
async def http(server: Server) -> httpx.AsyncClient:
    async with httpx.AsyncClient(base_url=server.url, headers={"x-api-key": KEY_A}) as c:
        yield c  # type: ignore[misc]


async def _thread(http: httpx.AsyncClient) -> str:
    return str((await http.post("/threads", json={})).json()["thread_id"])


async def test_malformed_json(http: httpx.AsyncClient) -> None:
    r = await http.post("/threads", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 422
    assert "not valid JSON" in r.json()["detail"]


async def test_unknown_field_is_rejected_by_name(http: httpx.AsyncClient) -> None:
    tid = await _thread(http)
    r = await http.post(f"/threads/{tid}/runs", json={"assistant_id": "echo", "inptu": {}})
    assert r.status_code == 422 and "inptu" in r.json()["detail"]


@pytest.mark.parametrize(
    ("field", "value"),
    [("strict_resume", True), ("feedback_keys", ["k"]), ("langsmith_tracer", {"project_name": "p"})],
)
async def test_known_but_unsupported_fields_422(http: httpx.AsyncClient, field: str, value: object) -> None:
    tid = await _thread(http)
    r = await http.post(f"/threads/{tid}/runs", json={"assistant_id": "echo", "input": {}, field: value})
    assert r.status_code == 422 and field in r.json()["detail"]


async def test_unknown_stream_mode(http: httpx.AsyncClient) -> None:
    tid = await _thread(http)
    r = await http.post(f"/threads/{tid}/runs/stream", json={"assistant_id": "echo", "stream_mode": ["valuez"]})
    assert r.status_code == 422 and "stream_mode" in r.json()["detail"]


async def test_unknown_assistant_is_404(http: httpx.AsyncClient) -> None:
    tid = await _thread(http)
    r = await http.post(f"/threads/{tid}/runs", json={"assistant_id": "no-such-graph", "input": {}})
    assert r.status_code == 404 and "no-such-graph" in r.json()["detail"]
    r = await http.get("/assistants/6f1c2a8e-0000-4000-8000-000000000000")
    assert r.status_code == 404


async def test_invalid_uuids_are_422(http: httpx.AsyncClient) -> None:
    r = await http.get("/threads/not-a-uuid")
    assert r.status_code == 422 and "thread_id" in r.json()["detail"]
    tid = await _thread(http)
    r = await http.get(f"/threads/{tid}/runs/also-bad")
    assert r.status_code == 422 and "run_id" in r.json()["detail"]
    r = await http.post("/threads", json={"thread_id": "nope"})
    assert r.status_code == 422


async def test_oversize_body_is_413(http: httpx.AsyncClient) -> None:
    big = {"metadata": {"blob": "x" * 300_000}}
    r = await http.post("/threads", json=big)
    assert r.status_code == 413 and "limit" in r.json()["detail"]


async def test_unknown_graph_for_new_assistant(http: httpx.AsyncClient) -> None:
    r = await http.post("/assistants", json={"graph_id": "nope"})
    assert r.status_code == 422 and "nope" in r.json()["detail"]


async def test_bad_last_event_id(http: httpx.AsyncClient) -> None:
    tid = await _thread(http)
    run = (await http.post(f"/threads/{tid}/runs", json={"assistant_id": "echo", "input": {}})).json()
    r = await http.get(f"/threads/{tid}/runs/{run['run_id']}/stream", headers={"Last-Event-ID": "garbage"})
    assert r.status_code == 422 and "Last-Event-ID" in r.json()["detail"]


async def test_input_and_command_together(http: httpx.AsyncClient) -> None:
    tid = await _thread(http)
    r = await http.post(f"/threads/{tid}/runs", json={"assistant_id": "echo", "input": {}, "command": {"resume": 1}})
    assert r.status_code == 422 and "mutually exclusive" in r.json()["detail"]
