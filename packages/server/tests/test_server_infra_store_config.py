"""langgraph.json's ``store`` block, and start-ups that must fail clearly because of it.

The system Postgres (what CI uses) has no pgvector: a server asked for semantic search there must
exit with a message saying what to do, not start half-working.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from cogni_server.graphs.config import GraphLoadError, ProjectConfig
from cogni_server.graphs.store_config import StoreConfig, load_embed_function, read_store_config
from packages.server.tests.core.conftest import server_env
from testsupport import ManagedProcess, free_port, fresh_database

FIXTURE_GRAPHS = Path(__file__).resolve().parent / "fixtures" / "project" / "store_fixture_graphs.py"


def project(tmp_path: Path, store: Any) -> ProjectConfig:
    raw = {"graphs": {"memory": f"{FIXTURE_GRAPHS}:memory"}, "store": store}
    path = tmp_path / "langgraph.json"
    path.write_text(json.dumps(raw))
    return ProjectConfig(path=path, graphs={}, dependencies=[], env={}, raw=raw)


def test_absent_block_means_no_index_and_default_ttl_rules(tmp_path: Path) -> None:
    config = read_store_config(project(tmp_path, None))
    assert config == StoreConfig()
    assert config.library_index(None) is None
    assert config.library_ttl() == {
        "refresh_on_read": True,
        "default_ttl": None,
        "sweep_interval_minutes": 5.0,
        "omit_expired": True,
    }


def test_full_block_is_read_into_the_library_configs(tmp_path: Path) -> None:
    store = {
        "index": {
            "embed": "openai:text-embedding-3-small",
            "dims": 1536,
            "fields": ["text", "notes[*].body"],
            "distance_type": "inner_product",
            "ann_index_config": {"kind": "hnsw", "m": 8},
        },
        "ttl": {"refresh_on_read": False, "default_ttl": 60, "sweep_interval_minutes": 0.5},
    }
    config = read_store_config(project(tmp_path, store))
    assert config.index is not None and not config.index.embed_is_python
    assert config.index.litellm_model == "text-embedding-3-small"
    embed = object()
    assert config.library_index(embed) == {
        "dims": 1536,
        "embed": embed,
        "fields": ["text", "notes[*].body"],
        "distance_type": "inner_product",
        "ann_index_config": {"kind": "hnsw", "m": 8},
    }
    assert config.library_ttl()["default_ttl"] == 60 and config.library_ttl()["refresh_on_read"] is False


@pytest.mark.parametrize(
    ("store", "says"),
    [
        ([], "store must be an object"),
        ({"indexes": {}}, "unknown key(s) indexes"),
        ({"index": {"dims": 4}}, "needs both 'dims' and 'embed'"),
        ({"index": {"dims": 0, "embed": "x:y"}}, "dims must be a whole number"),
        ({"index": {"dims": "4", "embed": "x:y"}}, "dims must be a whole number"),
        ({"index": {"dims": 4, "embed": ""}}, "embed must be"),
        ({"index": {"dims": 4, "embed": "x:y", "fields": "text"}}, "fields must be a non-empty list"),
        ({"index": {"dims": 4, "embed": "x:y", "distance_type": "dot"}}, "distance_type must be one of"),
        ({"index": {"dims": 4, "embed": "x:y", "ann_index_config": {"kind": "flat"}}}, "kind must be one of"),
        ({"index": {"dims": 4, "embed": "x:y", "ann_index_config": {"m": "8"}}}, "m must be a int"),
        ({"index": {"dims": 4, "embed": "x:y", "ann_index_config": {"m": 0}}}, "m must be at least 1"),
        ({"index": {"dims": 4, "embed": "x:y", "ann_index_config": {"nlist": 9}}}, "nlist does not apply"),
        ({"index": {"dims": 4, "embed": "x:y", "model": "z"}}, "unknown key(s) model"),
        ({"ttl": {"default_ttl": 0}}, "default_ttl must be a whole number"),
        ({"ttl": {"default_ttl": 1.5}}, "default_ttl must be a whole number"),
        ({"ttl": {"refresh_on_read": "yes"}}, "refresh_on_read must be true or false"),
        ({"ttl": {"sweep_interval_minutes": 0}}, "sweep_interval_minutes must be"),
        ({"ttl": {"sweep_minutes": 1}}, "unknown key(s) sweep_minutes"),
    ],
)
def test_bad_blocks_are_start_up_errors_naming_the_key(tmp_path: Path, store: Any, says: str) -> None:
    with pytest.raises(GraphLoadError) as caught:
        read_store_config(project(tmp_path, store))
    assert says in str(caught.value) and "langgraph.json: store" in str(caught.value)


def test_python_embed_functions_load_like_graphs(tmp_path: Path) -> None:
    (tmp_path / "embedder.py").write_text("async def aembed(texts):\n    return [[1.0, 0.0] for _ in texts]\n")
    config = read_store_config(project(tmp_path, {"index": {"dims": 2, "embed": "./embedder.py:aembed"}}))
    assert config.index is not None and config.index.embed_is_python
    assert load_embed_function(project(tmp_path, None), config.index).__name__ == "aembed"
    dotted = read_store_config(project(tmp_path, {"index": {"dims": 2, "embed": "json.decoder:JSONDecoder"}}))
    assert dotted.index is not None and dotted.index.embed_is_python
    for embed, says in [("./missing.py:f", "file not found"), ("./embedder.py:nope", "no attribute 'nope'")]:
        bad = read_store_config(project(tmp_path, {"index": {"dims": 2, "embed": embed}}))
        assert bad.index is not None
        with pytest.raises(GraphLoadError, match=says):
            load_embed_function(project(tmp_path, None), bad.index)


def _start_and_expect_exit(config: Path, database_url: str, **env: str) -> str:
    proc = ManagedProcess.python_module(
        "cogni_server",
        "serve",
        "--config",
        str(config),
        "--port",
        str(free_port()),
        env=server_env(database_url, **env),
        name="cogni-server-store-config",
    )
    try:
        code = proc.proc.wait(timeout=90)
        output = proc.output()
    finally:
        proc.stop()
    assert code == 3, f"exit {code}:\n{output}"
    return output


@pytest.mark.integration
def test_semantic_search_without_pgvector_stops_the_start_up_with_what_to_do(tmp_path: Path) -> None:
    config = project(tmp_path, {"index": {"dims": 8, "embed": "openai:text-embedding-3-small"}}).path
    with fresh_database("cogni_store_nopgvector") as db:
        output = _start_and_expect_exit(config, db, LITELLM_BASE_URL="http://127.0.0.1:9/v1")
    assert "the store cannot start: store.index is set in langgraph.json" in output
    assert "no pgvector extension" in output and "CREATE EXTENSION vector" in output


@pytest.mark.integration
def test_a_provider_embedder_without_litellm_settings_stops_the_start_up(tmp_path: Path) -> None:
    config = project(tmp_path, {"index": {"dims": 8, "embed": "openai:text-embedding-3-small"}}).path
    with fresh_database("cogni_store_nolitellm") as db:
        output = _start_and_expect_exit(config, db, LITELLM_BASE_URL="")
    assert "set LITELLM_BASE_URL" in output
