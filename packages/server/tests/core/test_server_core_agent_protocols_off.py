"""``http.disable_mcp`` and ``http.disable_a2a`` in langgraph.json remove ``/mcp`` and the A2A routes
(404), as on the reference server, while the rest of the API keeps answering."""

from __future__ import annotations

import json
from pathlib import Path

import httpx

from testsupport import free_port, fresh_database

from .conftest import KEY_A, PROJECT, start_server


def _project(tmp_path: Path) -> Path:
    graphs = PROJECT.parent / "server_fixture_graphs.py"
    http = {"disable_mcp": True, "disable_a2a": True, "disable_store": True}
    config = {"graphs": {"echo": f"{graphs}:echo"}, "http": http}
    path = tmp_path / "langgraph.json"
    path.write_text(json.dumps(config))
    return path


def test_disabled_protocols_answer_404(tmp_path: Path) -> None:
    with fresh_database("cogni_server_protocols_off") as db:
        port = free_port()
        proc = start_server(db, port, project=_project(tmp_path))
        try:
            url = f"http://127.0.0.1:{port}"
            with httpx.Client(headers={"x-api-key": KEY_A}, timeout=10) as http:
                rpc = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
                accept = {"accept": "application/json, text/event-stream"}
                mcp = http.post(f"{url}/mcp", json=rpc, headers=accept)
                card = http.get(f"{url}/.well-known/agent-card.json", params={"assistant_id": "echo"})
                a2a = http.post(f"{url}/a2a/echo", json={**rpc, "method": "tasks/get", "params": {"id": "x"}})
                api = http.post(f"{url}/assistants/search", json={})
                flags = http.get(f"{url}/info").json()["flags"]
        finally:
            proc.stop()
    assert (mcp.status_code, card.status_code, a2a.status_code) == (404, 404, 404)
    assert api.status_code == 200 and [a["graph_id"] for a in api.json()] == ["echo"]
    # /info tells the clients what is off (the SDKs read these flags)
    assert flags["mcp"] is False and flags["a2a"] is False and flags["store"] is False
    assert flags["assistants"] is True and flags["crons"] is True and flags["thread_streaming"] is True
