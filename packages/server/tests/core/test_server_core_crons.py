"""Cron routes through the official Python client on the shared server: create (both routes, every
field the SDKs send), get, patch rules, delete, search, count, validation and tenancy. Firing is in
``test_server_core_cron_firing.py``."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from langgraph_sdk.client import LangGraphClient

from cogni_server.ids import system_assistant_id

from .conftest import KEY_A, Server

CRON_KEYS = {
    "cron_id",
    "assistant_id",
    "thread_id",
    "schedule",
    "payload",
    "metadata",
    "next_run_date",
    "end_time",
    "user_id",
    "timezone",
    "on_run_completed",
    "enabled",
    "created_at",
    "updated_at",
}


async def test_stateless_cron_with_every_sdk_field(client: LangGraphClient) -> None:
    tag = uuid.uuid4().hex
    end = datetime.now(UTC) + timedelta(days=2)
    cron = await client.crons.create(
        "echo",
        schedule="0 9 * * *",
        input={"messages": []},
        config={"tags": ["t1"], "configurable": {"foo": "bar"}},
        context={"user": "u"},
        metadata={"tag": tag, "n": 1},
        interrupt_after=["respond"],
        on_run_completed="keep",
        end_time=end,
        enabled=False,
        timezone="America/New_York",
        stream_mode=["values", "updates"],
        stream_subgraphs=False,
        stream_resumable=False,
        durability="sync",
        multitask_strategy="enqueue",
    )
    assert set(cron) == CRON_KEYS
    assert cron["thread_id"] is None and cron["on_run_completed"] == "keep" and cron["enabled"] is False
    assert cron["assistant_id"] == str(system_assistant_id("echo"))  # the graph id resolved
    assert cron["timezone"] == "America/New_York" and cron["metadata"] == {"tag": tag, "n": 1}
    assert datetime.fromisoformat(cron["end_time"]) == end.replace(microsecond=end.microsecond)
    nxt = datetime.fromisoformat(cron["next_run_date"]).astimezone(UTC)
    assert nxt > datetime.now(UTC) and nxt.minute == 0 and nxt.hour in (13, 14)  # 09:00 New York
    payload = cron["payload"]
    assert payload["config"]["configurable"] == {"foo": "bar", "cron_id": cron["cron_id"]}
    assert payload["input"] == {"messages": []} and payload["durability"] == "sync"
    assert payload["assistant_id"] == cron["assistant_id"]
    assert cron["user_id"] == "tenant-a"
    assert await client.crons.count(metadata={"tag": tag}) == 1


async def test_thread_cron_and_get(client: LangGraphClient, server: Server) -> None:
    tid = (await client.threads.create())["thread_id"]
    cron = await client.crons.create_for_thread(
        tid, "echo", schedule="*/5 * * * *", input={"messages": []}, metadata={"kind": "thread"}
    )
    assert cron["thread_id"] == tid and cron["on_run_completed"] is None
    async with httpx.AsyncClient(base_url=server.url, headers={"x-api-key": KEY_A}) as http:
        got = await http.get(f"/runs/crons/{cron['cron_id']}")
        assert got.status_code == 200 and got.json()["cron_id"] == cron["cron_id"]
        # the JS client sends on_run_completed on the thread route too: kept in the payload only
        r = await http.post(
            f"/threads/{tid}/runs/crons",
            json={"schedule": "* * * * *", "assistant_id": "echo", "on_run_completed": "keep", "enabled": False},
        )
        assert r.status_code == 200 and r.json()["on_run_completed"] is None
        assert r.json()["payload"]["on_run_completed"] == "keep"
        assert (await http.get("/runs/crons/not-a-uuid")).status_code == 422
        assert (await http.get(f"/runs/crons/{uuid.uuid4()}")).status_code == 404
    assert {c["cron_id"] for c in await client.crons.search(thread_id=tid)} >= {cron["cron_id"]}
    assert await client.crons.count(thread_id=tid) == 2


async def test_patch_rules(client: LangGraphClient) -> None:
    cron = await client.crons.create(
        "echo", schedule="0 9 * * *", input={"messages": []}, metadata={"p": 1}, enabled=False,
        end_time=datetime(2030, 1, 1, tzinfo=UTC),
    )  # fmt: skip
    cid = cron["cron_id"]
    up = await client.crons.update(cid, timezone="Asia/Kolkata")
    assert datetime.fromisoformat(up["next_run_date"]).astimezone(UTC).strftime("%H:%M") == "03:30"
    up = await client.crons.update(cid, schedule="30 8 * * *", metadata={"q": 2}, config={"tags": ["x"]})
    assert up["schedule"] == "30 8 * * *" and up["metadata"] == {"p": 1, "q": 2}
    assert up["payload"]["metadata"] == {"q": 2}
    assert up["payload"]["config"] == {"tags": ["x"], "configurable": {"cron_id": cid}}
    assert datetime.fromisoformat(up["next_run_date"]).astimezone(UTC).strftime("%H:%M") == "03:00"
    assert up["updated_at"] > cron["updated_at"]
    assert up["end_time"] is not None
    up = await client.crons.update(cid, end_time=None)  # the SDK sends null: clear it
    assert up["end_time"] is None
    up = await client.crons.update(cid, enabled=True, on_run_completed="keep")
    assert up["enabled"] is True and up["on_run_completed"] == "keep"
    assert datetime.fromisoformat(up["next_run_date"]) > datetime.now(UTC)
    await client.crons.delete(cid)
    with pytest.raises(httpx.HTTPStatusError) as info:
        await client.crons.delete(cid)
    assert info.value.response.status_code == 404


async def test_search_sort_select_and_pages(client: LangGraphClient, server: Server) -> None:
    tag = uuid.uuid4().hex
    ids = [
        (await client.crons.create("echo", schedule=f"{m} 3 * * *", metadata={"tag": tag}, enabled=False))["cron_id"]
        for m in (30, 10, 20)
    ]
    page = await client.crons.search(metadata={"tag": tag}, limit=2)
    assert [c["cron_id"] for c in page] == ids[::-1][:2]  # newest first
    rows = await client.crons.search(
        metadata={"tag": tag}, sort_by="next_run_date", sort_order="asc", select=["cron_id", "schedule"]
    )
    assert [r["schedule"] for r in rows] == ["10 3 * * *", "20 3 * * *", "30 3 * * *"]
    assert all(set(r) == {"cron_id", "schedule"} for r in rows)
    assert await client.crons.search(assistant_id="echo", metadata={"tag": tag}, enabled=False, limit=10)
    assert await client.crons.search(metadata={"tag": tag}, enabled=True) == []
    async with httpx.AsyncClient(base_url=server.url, headers={"x-api-key": KEY_A}) as http:
        r = await http.post("/runs/crons/search", json={"metadata": {"tag": tag}, "limit": 2, "offset": 0})
        assert r.headers["x-pagination-total"] == "3" and r.headers["x-pagination-next"] == "2"
        r = await http.post("/runs/crons/search", json={"metadata": {"tag": tag}, "select": ["cron_id", "now"]})
        assert all(set(row) == {"cron_id", "now"} for row in r.json())
        for bad in ({"limit": 0}, {"sort_by": "bogus"}, {"select": ["bogus"]}, {"sort_order": "up"}, {"x": 1}):
            assert (await http.post("/runs/crons/search", json=bad)).status_code == 422, bad
        assert (await http.post("/runs/crons/count", json={"metadata": {"tag": tag}})).json() == 3


@pytest.mark.parametrize(
    ("body", "status", "words"),
    [
        ({"schedule": "not a cron"}, 422, "Invalid cron schedule: 'not a cron'"),
        ({"schedule": "61 * * * *"}, 422, "Invalid cron schedule"),
        ({"schedule": ""}, 422, "Invalid cron schedule"),
        ({"schedule": "*/10 * * * * *"}, 422, "5 fields"),
        ({"schedule": "0 0 1 1 * * 2030"}, 422, "5 fields"),
        ({"timezone": "Mars/Olympus"}, 422, "Invalid timezone: 'Mars/Olympus'"),
        ({"end_time": "tomorrow"}, 422, "end_time"),
        ({"on_run_completed": "bogus"}, 422, "on_run_completed"),
        ({"multitask_strategy": "bogus"}, 422, "multitask_strategy"),
        ({"enabled": "yes"}, 422, "enabled"),
        ({"command": {"resume": 1}}, 422, "command"),
        ({"if_not_exists": "sometimes"}, 422, "if_not_exists"),
        ({"after_seconds": 5}, 422, "after_seconds"),
        ({"assistant_id": "nope"}, 404, "nope"),
        ({"assistant_id": str(uuid.UUID(int=0))}, 404, "not found"),
        ({"webhook": "ftp://example.com/x"}, 422, "scheme 'ftp'"),
        ({"webhook": "/relative"}, 422, "no host"),
        ({"webhook": "http://127.0.0.1:9/x"}, 422, "loopback"),
        ({"webhook": "http://10.1.2.3/x"}, 422, "private"),
        ({"webhook": "http://169.254.169.254/latest"}, 422, "link-local"),
    ],
)
async def test_bad_crons_answer_4xx(server: Server, body: dict[str, object], status: int, words: str) -> None:
    full = {"schedule": "* * * * *", "assistant_id": "echo", "enabled": False, **body}
    async with httpx.AsyncClient(base_url=server.url, headers={"x-api-key": KEY_A}) as http:
        r = await http.post("/runs/crons", json=full)
    assert r.status_code == status, r.text
    assert words in r.json()["detail"]


async def test_missing_schedule_and_thread(server: Server) -> None:
    async with httpx.AsyncClient(base_url=server.url, headers={"x-api-key": KEY_A}) as http:
        r = await http.post("/runs/crons", json={"assistant_id": "echo"})
        assert r.status_code == 422 and "schedule" in r.json()["detail"]
        r = await http.post(
            f"/threads/{uuid.uuid4()}/runs/crons", json={"assistant_id": "echo", "schedule": "* * * * *"}
        )
        assert r.status_code == 404
        r = await http.post("/threads/nope/runs/crons", json={"assistant_id": "echo", "schedule": "* * * * *"})
        assert r.status_code == 422
        new_tid = str(uuid.uuid4())  # the JS client can ask for the thread to be created
        body = {"assistant_id": "echo", "schedule": "@daily", "if_not_exists": "create"}
        r = await http.post(f"/threads/{new_tid}/runs/crons", json=body)
        assert r.status_code == 200 and r.json()["thread_id"] == new_tid
        assert (await http.get(f"/threads/{new_tid}")).status_code == 200
        cid = (await http.post("/runs/crons", json={"assistant_id": "echo", "schedule": "@hourly"})).json()["cron_id"]
        assert (await http.patch(f"/runs/crons/{cid}", json={})).status_code == 422
        assert (await http.patch(f"/runs/crons/{cid}", json={"schedule": "bogus"})).status_code == 422
        assert (await http.patch(f"/runs/crons/{cid}", json={"assistant_id": "echo"})).status_code == 422
        assert (await http.delete(f"/runs/crons/{cid}")).status_code == 204


async def test_crons_are_tenant_owned(client: LangGraphClient, client_b: LangGraphClient) -> None:
    tag = uuid.uuid4().hex
    tid = (await client.threads.create())["thread_id"]
    cron = await client.crons.create("echo", schedule="@daily", metadata={"tag": tag}, enabled=False)
    cid = cron["cron_id"]
    attempts = [
        lambda: client_b.crons.update(cid, enabled=True),
        lambda: client_b.crons.delete(cid),
        lambda: client_b.http.get(f"/runs/crons/{cid}"),
        lambda: client_b.crons.create_for_thread(tid, "echo", schedule="@daily"),
    ]
    for attempt in attempts:
        with pytest.raises(httpx.HTTPStatusError) as info:
            await attempt()
        assert info.value.response.status_code == 404, info.value.response.text
    assert await client_b.crons.search(metadata={"tag": tag}) == []
    assert await client_b.crons.count(metadata={"tag": tag}) == 0
    assert (await client.crons.search(metadata={"tag": tag}))[0]["enabled"] is False  # untouched


async def test_deleting_the_thread_deletes_its_crons(client: LangGraphClient) -> None:
    tid = (await client.threads.create())["thread_id"]
    await client.crons.create_for_thread(tid, "echo", schedule="@daily")
    assert await client.crons.count(thread_id=tid) == 1
    await client.threads.delete(tid)
    assert await client.crons.count(thread_id=tid) == 0
