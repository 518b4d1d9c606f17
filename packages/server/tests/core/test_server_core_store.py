"""The store routes through the official Python client (and raw HTTP for what the client never sends).

Every test works under its own random root label, so tests sharing the session's server never see
each other's items.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
import pytest
from langgraph_sdk.client import LangGraphClient
from langgraph_sdk.errors import UnprocessableEntityError

from .conftest import KEY_A, Server


def root() -> str:
    return f"t{uuid.uuid4().hex[:12]}"


@pytest.fixture
async def http(server: Server) -> Any:
    async with httpx.AsyncClient(base_url=server.url, headers={"x-api-key": KEY_A}) as h:
        yield h


async def test_put_get_replace_delete_round_trip(client: LangGraphClient, http: httpx.AsyncClient) -> None:
    ns = [root(), "u1"]
    assert await client.store.put_item(ns, "k", {"text": "hello", "n": 1}) is None
    item = await client.store.get_item(ns, "k")
    assert set(item) == {"namespace", "key", "value", "created_at", "updated_at"}
    assert (item["namespace"], item["key"], item["value"]) == (ns, "k", {"text": "hello", "n": 1})
    assert item["created_at"] == item["updated_at"] and item["created_at"].endswith("+00:00")
    await asyncio.sleep(0.01)
    await client.store.put_item(ns, "k", {"text": "again"})
    again = await client.store.get_item(ns, "k")
    assert again["value"] == {"text": "again"}
    assert again["created_at"] == item["created_at"] and again["updated_at"] > item["updated_at"]
    await client.store.delete_item(ns, "k")
    assert await client.store.get_item(ns, "k") is None
    await client.store.delete_item(ns, "k")  # deleting an absent item is fine

    raw = await http.put("/store/items", json={"namespace": ns, "key": "r", "value": {}})
    assert raw.status_code == 204 and raw.content == b""
    missing = await http.get("/store/items", params={"namespace": ".".join(ns), "key": "nope"})
    assert missing.status_code == 200 and missing.json() is None
    gone = await http.request("DELETE", "/store/items", json={"namespace": ns, "key": "r"})
    assert gone.status_code == 204 and gone.content == b""


async def test_search_order_prefix_filter_and_pages(client: LangGraphClient) -> None:
    top = root()
    for i, (ns, key) in enumerate(
        [([top, "docs"], "a"), ([top, "docs"], "b"), ([top, "docs", "deep"], "c"), ([top, "docsx"], "d")]
    ):
        await client.store.put_item(ns, key, {"i": i, "tag": "even" if i % 2 == 0 else "odd"})
    everything = (await client.store.search_items([top]))["items"]
    assert [i["key"] for i in everything] == ["d", "c", "b", "a"]  # newest first
    assert all(i["score"] is None for i in everything)
    docs = (await client.store.search_items([top, "docs"]))["items"]
    assert sorted(i["key"] for i in docs) == ["a", "b", "c"]  # whole labels: docsx is not under docs
    assert (await client.store.search_items([top, "doc"]))["items"] == []
    even = (await client.store.search_items([top], filter={"tag": "even"}))["items"]
    assert sorted(i["key"] for i in even) == ["a", "c"]
    ranged = (await client.store.search_items([top], filter={"i": {"$gte": 1, "$lt": 3}}))["items"]
    assert sorted(i["key"] for i in ranged) == ["b", "c"]
    page = (await client.store.search_items([top], limit=2, offset=1))["items"]
    assert [i["key"] for i in page] == ["c", "b"]


async def test_search_with_an_empty_body_searches_everything_of_the_tenant(http: httpx.AsyncClient) -> None:
    top = root()
    await http.put("/store/items", json={"namespace": [top], "key": "k", "value": {"x": 1}})
    found = await http.post("/store/items/search", json={})
    assert found.status_code == 200
    assert any(i["namespace"] == [top] for i in found.json()["items"])


async def test_namespaces_prefix_suffix_wildcard_depth_and_pages(client: LangGraphClient) -> None:
    top = root()
    for ns in ([top, "docs", "u1"], [top, "docs", "u2"], [top, "docs", "u2", "notes"], [top, "img", "u1"], [top]):
        await client.store.put_item(ns, "k", {})
    listed = (await client.store.list_namespaces(prefix=[top]))["namespaces"]
    assert listed == [[top], [top, "docs", "u1"], [top, "docs", "u2"], [top, "docs", "u2", "notes"], [top, "img", "u1"]]
    assert (await client.store.list_namespaces(prefix=[top], max_depth=2))["namespaces"] == [
        [top],
        [top, "docs"],
        [top, "img"],
    ]
    by_suffix = (await client.store.list_namespaces(prefix=[top], suffix=["u1"]))["namespaces"]
    assert by_suffix == [[top, "docs", "u1"], [top, "img", "u1"]]
    wild = (await client.store.list_namespaces(prefix=[top, "*", "u2"]))["namespaces"]
    assert wild == [[top, "docs", "u2"], [top, "docs", "u2", "notes"]]
    assert (await client.store.list_namespaces(suffix=["*", top]))["namespaces"] == []  # [top] is one label deep
    page = (await client.store.list_namespaces(prefix=[top], limit=2, offset=1))["namespaces"]
    assert page == [[top, "docs", "u1"], [top, "docs", "u2"]]


BAD_PUTS: list[tuple[dict[str, Any], str]] = [
    ({"namespace": ["do.cs"], "key": "k", "value": {}}, "contains '.'"),
    ({"namespace": ["a", ""], "key": "k", "value": {}}, "non-empty"),
    ({"namespace": [], "key": "k", "value": {}}, "cannot be empty"),
    ({"namespace": ["langgraph", "x"], "key": "k", "value": {}}, "langgraph"),
    ({"namespace": ["~t~abc"], "key": "k", "value": {}}, "reserved"),
    ({"namespace": ["*"], "key": "k", "value": {}}, "wildcard"),
    ({"namespace": ["a"], "key": "", "value": {}}, "key"),
    ({"namespace": ["a"], "key": "k", "value": [1, 2]}, "value"),
    ({"namespace": ["a"], "key": "k", "value": None}, "value"),
    ({"namespace": ["a"], "key": "k"}, "value"),
    ({"namespace": ["a"], "key": "k", "value": {"n": 2**70}}, "64 bits"),
    ({"namespace": ["a"], "key": "k", "value": {"s": "nul\u0000"}}, "invalid value"),
    ({"namespace": ["a"], "key": "k\u0000", "value": {}}, "NUL"),
    ({"namespace": ["a\u0000"], "key": "k", "value": {}}, "NUL"),
    ({"namespace": "a", "key": "k", "value": {}}, "namespace"),
    ({"namespace": ["a"], "key": "k", "value": {}, "ttl": 0}, "ttl"),
    ({"namespace": ["a"], "key": "k", "value": {}, "ttl": -5}, "ttl"),
    ({"namespace": ["a"], "key": "k", "value": {}, "ttl": 1.5}, "ttl"),
    ({"namespace": ["a"], "key": "k", "value": {}, "ttl": "abc"}, "ttl"),
    ({"namespace": ["a"], "key": "k", "value": {}, "ttl": True}, "ttl"),
    ({"namespace": ["a"], "key": "k", "value": {}, "ttl": 2**31}, "ttl"),
    ({"namespace": ["a"], "key": "k", "value": {}, "index": ["text"]}, "semantic search is not configured"),
    ({"namespace": ["a"], "key": "k", "value": {}, "index": True}, "index"),
    ({"namespace": ["a"], "key": "k", "value": {}, "tags": ["x"]}, "unknown field 'tags'"),
]


@pytest.mark.parametrize(("body", "says"), BAD_PUTS)
async def test_bad_puts_answer_422_saying_why(http: httpx.AsyncClient, body: dict[str, Any], says: str) -> None:
    r = await http.put("/store/items", json=body)
    assert r.status_code == 422, r.text
    assert says in r.json()["detail"]


@pytest.mark.parametrize(
    ("method", "path", "options", "says"),
    [
        ("GET", "/store/items", {"params": {"namespace": "a"}}, "key"),
        ("GET", "/store/items", {"params": {"key": "k"}}, "cannot be empty"),
        ("GET", "/store/items", {"params": {"namespace": "a..b", "key": "k"}}, "non-empty"),
        ("GET", "/store/items", {"params": {"namespace": "a", "key": "k", "refresh_ttl": "maybe"}}, "refresh_ttl"),
        ("DELETE", "/store/items", {"json": {"namespace": [], "key": "k"}}, "cannot be empty"),
        ("DELETE", "/store/items", {"json": {"namespace": ["a"]}}, "key"),
        ("POST", "/store/items/search", {"json": {"namespace_prefix": ["a.b"]}}, "contains '.'"),
        ("POST", "/store/items/search", {"json": {"limit": 0}}, "limit"),
        ("POST", "/store/items/search", {"json": {"limit": 1001}}, "limit"),
        ("POST", "/store/items/search", {"json": {"offset": -1}}, "offset"),
        ("POST", "/store/items/search", {"json": {"filter": {"n": {"$in": [1]}}}}, "unsupported operator '$in'"),
        ("POST", "/store/items/search", {"json": {"filter": {"n": {"$gt": None}}}}, "$gt"),
        ("POST", "/store/items/search", {"json": {"filter": {"n": {"$gt": 1, "a": 2}}}}, "mixes"),
        ("POST", "/store/items/search", {"json": {"filter": [1]}}, "filter"),
        ("POST", "/store/items/search", {"json": {"query": "hello"}}, "semantic search is not configured"),
        ("POST", "/store/namespaces", {"json": {"max_depth": 0}}, "max_depth"),
        ("POST", "/store/namespaces", {"json": {"limit": -1}}, "limit"),
        ("POST", "/store/namespaces", {"json": {"prefix": ["~t~x"]}}, "reserved"),
        ("POST", "/store/namespaces", {"json": {"suffix": ["a.b"]}}, "contains '.'"),
        ("POST", "/store/namespaces", {"json": {"depth": 2}}, "unknown field 'depth'"),
    ],
)
async def test_bad_reads_answer_422_saying_why(
    http: httpx.AsyncClient, method: str, path: str, options: dict[str, Any], says: str
) -> None:
    r = await http.request(method, path, **options)
    assert r.status_code == 422, r.text
    assert says in r.json()["detail"]


async def test_the_client_surfaces_a_422(client: LangGraphClient) -> None:
    with pytest.raises(UnprocessableEntityError):
        await client.store.put_item([root()], "k", {}, ttl=0)
    with pytest.raises(UnprocessableEntityError):
        await client.store.search_items([root()], filter={"n": {"$regex": "x"}})


async def test_store_needs_credentials(server: Server) -> None:
    async with httpx.AsyncClient(base_url=server.url) as anonymous:
        r = await anonymous.post("/store/items/search", json={})
    assert r.status_code == 401


async def test_info_reports_the_store(server: Server) -> None:
    async with httpx.AsyncClient(base_url=server.url) as h:
        info = (await h.get("/info")).json()
    assert info["flags"]["store"] is True
    assert info["store"] == {"semantic_search": False, "index_fields": None}
