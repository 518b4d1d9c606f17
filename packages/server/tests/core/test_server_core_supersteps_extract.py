"""``supersteps`` on thread create (seed a history, all or nothing) and ``extract`` on thread search,
to the SDKs' shapes."""

from __future__ import annotations

import uuid

import httpx
from langgraph_sdk.client import LangGraphClient

from .conftest import KEY_A, Server

SEED = [
    {"updates": [{"values": {"messages": [{"role": "user", "content": "first"}]}, "as_node": "__input__"}]},
    {
        "updates": [
            {
                "values": {
                    "messages": [{"role": "user", "content": "first"}, {"role": "ai", "content": "echoed"}],
                    "count": 1,
                },
                "as_node": "respond",
            }
        ]
    },
]


async def test_supersteps_seed_the_history(client: LangGraphClient) -> None:
    thread = await client.threads.create(supersteps=SEED, metadata={"graph_id": "echo"})
    tid = thread["thread_id"]
    assert [m["content"] for m in thread["values"]["messages"]] == ["first", "echoed"]
    history = await client.threads.get_history(tid)
    assert [h["metadata"]["source"] for h in history] == ["update", "input"]
    assert history[0]["values"]["count"] == 1 and history[1]["next"] == ["__start__"]
    state = await client.threads.get_state(tid)
    assert state["values"]["messages"][-1]["type"] == "ai"
    out = await client.runs.wait(tid, "echo", input={"messages": [{"role": "user", "content": "next"}]})
    assert out["count"] == 2 and out["messages"][-1]["content"] == "echo: next"  # type: ignore[index]
    # a copy across deployments replays a history the same way: two updates in one superstep
    ai = {"role": "ai", "content": "x"}
    two = [{"updates": [{"values": {"messages": [ai]}, "as_node": "respond"}] * 2}]
    seeded = await client.threads.create(supersteps=two, metadata={"graph_id": "echo"})
    assert len(seeded["values"]["messages"]) == 2
    assert len(await client.threads.get_history(seeded["thread_id"])) == 1


async def test_bad_supersteps_create_nothing(server: Server) -> None:
    async with httpx.AsyncClient(base_url=server.url, headers={"x-api-key": KEY_A}) as http:
        cases = [
            ({"supersteps": SEED}, 422, "metadata.graph_id"),
            ({"supersteps": SEED, "metadata": {"graph_id": "nope"}}, 404, "nope"),
            ({"supersteps": [{"updates": [{"values": {}, "as_node": "nope"}]}], "metadata": {"graph_id": "echo"}}, 422,
             "'nope' does not exist"),
            ({"supersteps": [{"updates": [{"values": {}}]}], "metadata": {"graph_id": "echo"}}, 422, "as_node"),
            ({"supersteps": [{"updates": [{"values": None, "command": {"goto": "x"}, "as_node": "respond"}]}],
              "metadata": {"graph_id": "echo"}}, 422, "command"),
            ({"supersteps": [{"steps": []}], "metadata": {"graph_id": "echo"}}, 422, "updates"),
        ]  # fmt: skip
        for body, status, words in cases:
            tid = str(uuid.uuid4())
            r = await http.post("/threads", json={**body, "thread_id": tid})
            assert r.status_code == status and words in r.json()["detail"], (body, r.text)
            assert (await http.get(f"/threads/{tid}")).status_code == 404
        # command.update is applied as values
        body = {
            "supersteps": [{"updates": [{"values": None, "command": {"update": {"count": 7}}, "as_node": "respond"}]}]
        }
        r = await http.post("/threads", json={**body, "metadata": {"graph_id": "echo"}})
        assert r.status_code == 200 and r.json()["values"]["count"] == 7


async def test_extract_on_search(client: LangGraphClient, server: Server) -> None:
    tag = uuid.uuid4().hex
    tid = (await client.threads.create(metadata={"tag": tag}))["thread_id"]
    await client.runs.wait(tid, "echo", input={"messages": [{"role": "user", "content": "hi"}]})
    extract = {
        "last": "values.messages[-1].content",
        "first": "values.messages[0].content",
        "tag": "metadata.tag",
        "count": "values.count",
        "missing": "values.nope.deeper[3]",
    }
    [row] = await client.threads.search(metadata={"tag": tag}, extract=extract)
    assert row["extracted"] == {"last": "echo: hi", "first": "hi", "tag": tag, "count": 1, "missing": None}  # type: ignore[typeddict-item]
    assert row["values"]["count"] == 1
    [row] = await client.threads.search(metadata={"tag": tag}, extract={"c": "values.count"}, select=["thread_id"])
    assert row == {"thread_id": tid, "extracted": {"c": 1}}
    [row] = await client.threads.search(metadata={"tag": tag}, extract={})
    assert "extracted" not in row
    async with httpx.AsyncClient(base_url=server.url, headers={"x-api-key": KEY_A}) as http:
        for bad, words in (
            ({"s": "status"}, "must start with one of: config, interrupts, metadata, values"),
            ({"b": "values..x["}, "malformed"),
            ({f"a{i}": "values.x" for i in range(11)}, "at most 10"),
        ):
            r = await http.post("/threads/search", json={"extract": bad})
            assert r.status_code == 422 and words in r.json()["detail"], r.text
