"""langgraph.json checked at start-up, in-process: every key of the reference schema is acted on,
warned about (build-only) or refused with a message naming it; the ``http`` block's shapes; graph
factory signatures; and the application ``create_app`` builds for a custom app or a refused one."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.store.memory import InMemoryStore
from langgraph_sdk.runtime import ServerRuntime

from cogni_server.app import create_app
from cogni_server.config import Settings
from cogni_server.graphs import GraphLoadError, GraphRegistry
from cogni_server.graphs.config import read_project_config
from cogni_server.graphs.factory import FactorySignature, Inject, read_signature
from cogni_server.graphs.http_config import parse_http
from cogni_server.graphs.project_keys import DEPLOY_ONLY, REFUSED

FIXTURES = Path(__file__).parent / "fixtures" / "langgraph_json"
GRAPHS = FIXTURES / "factory_graphs.py"


@pytest.fixture(autouse=True)
def isolated_sys_path(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(sys, "path", list(sys.path))
    yield


def project(tmp_path: Path, **blocks: Any) -> Path:
    path = tmp_path / "langgraph.json"
    path.write_text(json.dumps({"graphs": {"agent": f"{GRAPHS}:compiled"}, **blocks}))
    return path


def refused(tmp_path: Path, **blocks: Any) -> str:
    with pytest.raises(GraphLoadError) as caught:
        read_project_config(project(tmp_path, **blocks))
    return str(caught.value)


def test_unknown_top_level_key_is_an_error_naming_it(tmp_path: Path) -> None:
    assert "unknown key(s) ['graph']" in refused(tmp_path, graph={})


@pytest.mark.parametrize("key", sorted(REFUSED))
def test_keys_this_server_does_not_implement_are_errors(tmp_path: Path, key: str) -> None:
    message = refused(tmp_path, **{key: {"path": "./x.py:y"}})
    assert f"'{key}'" in message and "remove the key" in message


@pytest.mark.parametrize("key", sorted(DEPLOY_ONLY))
def test_build_only_keys_are_warnings(tmp_path: Path, key: str, caplog: pytest.LogCaptureFixture) -> None:
    config = read_project_config(project(tmp_path, **{key: "x"}))
    assert config.warnings == (f"langgraph.json: '{key}' is ignored by this server ({DEPLOY_ONLY[key]})",)
    assert config.warnings[0] in caplog.text


def test_handled_keys_start_without_a_word(tmp_path: Path) -> None:
    config = read_project_config(
        project(
            tmp_path,
            **{"$schema": "https://langgra.ph/schema.json"},
            dependencies=["."],
            env={"A": "1"},
            checkpointer={"ttl": {"strategy": "delete", "default_ttl": 60}},
            auth={"path": "./auth.py:auth", "disable_studio_auth": True},
            http={"disable_mcp": True},
        )
    )
    assert config.warnings == ()
    assert config.auth == {"path": "./auth.py:auth", "disable_studio_auth": True}  # raw, for the auth module
    assert config.http.disable_mcp is True and config.http.disable_a2a is False


@pytest.mark.parametrize(
    ("checkpointer", "message"),
    [
        ({"path": "./saver.py:saver"}, "'checkpointer.path': a custom checkpointer is not supported"),
        ({"serde": {"pickle_fallback": True}}, "'checkpointer.serde'"),
        ({"ttll": {}}, "unknown key(s) in 'checkpointer': ['ttll']"),
    ],
)
def test_checkpointer_keys_beyond_ttl_are_refused(tmp_path: Path, checkpointer: dict[str, Any], message: str) -> None:
    assert message in refused(tmp_path, checkpointer=checkpointer)


def test_a_graph_definition_with_an_unknown_key_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "langgraph.json"
    path.write_text(json.dumps({"graphs": {"agent": {"path": f"{GRAPHS}:compiled", "descripton": "typo"}}}))
    with pytest.raises(GraphLoadError, match=r"graph 'agent': unknown key\(s\) \['descripton'\]"):
        read_project_config(path)


@pytest.mark.parametrize(
    ("http", "message"),
    [
        ({"mount_prefix": "/api"}, "http.mount_prefix: serving the API under a URL prefix is not supported"),
        ({"middleware_order": "auth_first"}, "http.middleware_order: 'auth_first' is not supported"),
        ({"middleware_order": "sideways"}, "http.middleware_order must be one of"),
        ({"disable_everything": True}, "unknown key(s) in 'http': ['disable_everything']"),
        ({"disable_store": "yes"}, "http.disable_store must be true or false"),
        ({"app": "no-colon"}, "http.app must be"),
        ({"cors": {"allow_origins": "*"}}, "http.cors.allow_origins must be a list of strings"),
        ({"cors": {"allow_origin": ["*"]}}, "http.cors: unknown key(s) ['allow_origin']"),
        ({"cors": {"allow_origin_regex": "("}}, "allow_origin_regex is not a regular expression"),
        ({"cors": {"max_age": -1}}, "http.cors.max_age must be a number of seconds"),
        ({"configurable_headers": {"only": ["x-a"]}}, "http.configurable_headers: unknown key(s) ['only']"),
        ({"configurable_headers": ["x-a"]}, "http.configurable_headers must be an object"),
    ],
)
def test_bad_http_blocks_are_errors_naming_the_key(http: dict[str, Any], message: str) -> None:
    with pytest.raises(GraphLoadError) as caught:
        parse_http(http, Path("."))
    assert message in str(caught.value)


def test_configurable_headers_patterns_and_both_spellings() -> None:
    http = parse_http(
        {"configurable_headers": {"includes": ["x-user-id", "my-prefix-*"], "exclude": ["*secret*"]}}, Path(".")
    )
    picked = http.configurable_headers.pick(
        {"X-User-Id": "u1", "my-prefix-a": "a", "my-prefix-secret-b": "b", "x-other": "o", "authorization": "t"}
    )
    assert picked == {"x-user-id": "u1", "my-prefix-a": "a"}
    assert not parse_http(None, Path(".")).configurable_headers.active  # nothing copied unless asked


async def test_a_factory_parameter_the_server_cannot_fill_is_a_start_up_error(tmp_path: Path) -> None:
    module = tmp_path / "odd.py"
    module.write_text("def make(config, db):\n    raise AssertionError('never called')\n")
    with pytest.raises(GraphLoadError, match="factory parameter 'db' is neither a RunnableConfig"):
        GraphRegistry.from_config(project(tmp_path, graphs={"odd": f"{module}:make"}))


async def test_registry_gives_a_runtime_factory_the_access_context_store_and_context(tmp_path: Path) -> None:
    registry = GraphRegistry.from_config(
        project(tmp_path, graphs={"rt": f"{GRAPHS}:make_with_runtime", "both": f"{GRAPHS}:make_with_both"})
    )
    store = InMemoryStore()
    async with registry.open("rt", checkpointer=InMemorySaver(), runtime_store=store, context={"tone": "dry"}) as graph:
        result = await graph.ainvoke({}, {"configurable": {"thread_id": "t"}})
    assert result == {"seen": ["runtime:threads.create_run", "context:dry"]}
    assert [item.value for item in store.search(("factory_calls",))] == [
        {"factory": "runtime", "access": "threads.create_run"}
    ]
    schemas = await registry.aschemas("both", config={"configurable": {"model": "m"}})
    assert "seen" in schemas["input_schema"]["properties"]


def test_create_app_refuses_an_http_app_that_is_not_a_starlette_app(tmp_path: Path) -> None:
    settings = Settings(config_path=project(tmp_path, http={"app": f"{GRAPHS}:State"}))
    with pytest.raises(GraphLoadError, match=r"http\.app: .* expected a Starlette or FastAPI application"):
        create_app(settings, "postgresql://unused")


def test_create_app_refuses_two_cors_settings(tmp_path: Path) -> None:
    settings = Settings(
        config_path=project(tmp_path, http={"cors": {"allow_origins": ["https://a.example"]}}),
        cors_allow_origins="https://b.example",
    )
    with pytest.raises(GraphLoadError, match=r"http\.cors and COGNI_CORS_ALLOW_ORIGINS are both set"):
        create_app(settings, "postgresql://unused")


def _no_args() -> None: ...
def _one_typed(cfg: dict[str, Any]) -> None: ...
def _named(config: dict[str, Any], runtime: object) -> None: ...
def _with_default(config: RunnableConfig, *, retries: int = 3) -> None: ...
def _annotated_any_names(rt: ServerRuntime, c: RunnableConfig, /) -> None: ...


@pytest.mark.parametrize(
    ("factory", "expected"),
    [
        (_no_args, FactorySignature()),
        (_one_typed, FactorySignature(keyword=(("cfg", Inject.CONFIG),))),
        (_named, FactorySignature(keyword=(("config", Inject.CONFIG), ("runtime", Inject.RUNTIME)))),
        (_with_default, FactorySignature(keyword=(("config", Inject.CONFIG),))),
        (_annotated_any_names, FactorySignature(positional=(Inject.RUNTIME, Inject.CONFIG))),
    ],
)
def test_factory_signatures_are_read_by_annotation_then_name(factory: Any, expected: FactorySignature) -> None:
    assert read_signature("g", factory) == expected


async def test_generator_factories_are_closed_after_use_and_errors_pass_through(tmp_path: Path) -> None:
    module = tmp_path / "gens.py"
    module.write_text(
        "from langgraph.graph import StateGraph\n"
        "from typing import TypedDict\n"
        "class S(TypedDict, total=False):\n    n: int\n"
        "events = []\n"
        "def _g():\n"
        "    b = StateGraph(S)\n    b.add_node('one', lambda s: {'n': 1})\n    b.set_entry_point('one')\n"
        "    return b.compile()\n"
        "async def agen(config):\n"
        "    events.append('open')\n"
        "    try:\n        yield _g()\n"
        "    except ValueError as exc:\n        events.append(f'saw {exc}')\n        raise\n"
        "    finally:\n        events.append('closed')\n"
        "def sgen(config):\n    yield _g()\n    events.append('sync closed')\n"
    )
    registry = GraphRegistry.from_config(project(tmp_path, graphs={"a": f"{module}:agen", "s": f"{module}:sgen"}))
    events = sys.modules[next(n for n in sys.modules if n.startswith("cogni_user_graph_gens_"))].events
    async with registry.open("a", checkpointer=None) as graph:
        assert (await graph.ainvoke({})) == {"n": 1}
        assert events == ["open"]
    assert events == ["open", "closed"]
    with pytest.raises(ValueError, match="boom"):
        async with registry.open("a", checkpointer=None):
            raise ValueError("boom")  # not a GraphLoadError: the graph was made, its use failed
    assert events[-2:] == ["saw boom", "closed"]
    async with registry.open("s", checkpointer=None) as graph:
        assert (await graph.ainvoke({})) == {"n": 1}
    assert events[-1] == "sync closed"
