"""Tools and their policy: denied, unknown, bad-argument and failing calls answer with error results."""

from __future__ import annotations

import json
from datetime import datetime

import pytest
from langchain_core.messages import ToolCall
from langchain_core.runnables import RunnableConfig

from cogni_ai_core import GraphRunConfig
from cogni_graphs.tools import POLICY_DENIED, allowed_tool_ids, run_tool_call
from cogni_graphs.tools.calculator import calculate
from cogni_graphs.tools.errors import ToolArgumentError
from cogni_graphs.tools.notes import search_notes_sync

BASE = GraphRunConfig(model="m", run_id="r", billing_account_id="a", virtual_key_id="v")


def _config(**configurable: object) -> RunnableConfig:
    return {"configurable": {**BASE.to_configurable(), **configurable}}


def _call(name: str, args: dict[str, object], call_id: str = "call_abc") -> ToolCall:
    return ToolCall(name=name, args=args, id=call_id, type="tool_call")


def test_absent_tool_ids_mean_the_catalog_tools_of_the_graph() -> None:
    assert allowed_tool_ids(_config(), graph="research", node="tools") == {"core__search_notes", "core__calculator"}
    assert allowed_tool_ids(_config(), graph="chat", node="tools") == frozenset()


def test_empty_tool_ids_deny_all_and_a_list_never_widens_the_catalog() -> None:
    assert allowed_tool_ids(_config(toolIds=[]), graph="poet", node="tools") == frozenset()
    widened = _config(toolIds=["core__calculator", "core__get_current_time"])
    assert allowed_tool_ids(widened, graph="poet", node="tools") == {"core__get_current_time"}


def test_node_scoped_tool_ids_override_the_run_wide_list() -> None:
    config = _config(toolIds=[], tools__toolIds=["core__calculator"])
    assert allowed_tool_ids(config, graph="research", node="tools") == {"core__calculator"}
    assert allowed_tool_ids(config, graph="research", node="other") == frozenset()


async def test_denied_call_answers_policy_denied_with_the_models_call_id() -> None:
    message = await run_tool_call(_call("core__calculator", {"expression": "1+1"}, "call_xyz"), frozenset())
    assert message.tool_call_id == "call_xyz"
    assert message.status == "error"
    result = json.loads(str(message.content))
    assert result["error"] == POLICY_DENIED
    assert "core__calculator" in result["message"]


async def test_allowed_call_runs_and_returns_json() -> None:
    message = await run_tool_call(
        _call("core__calculator", {"expression": "(3 + 4) * 2 ** 3"}), frozenset({"core__calculator"})
    )
    assert message.status == "success"
    assert json.loads(str(message.content)) == {"expression": "(3 + 4) * 2 ** 3", "result": 56}


async def test_unknown_tool_and_bad_arguments_are_error_results_not_exceptions() -> None:
    unknown = await run_tool_call(_call("core__rm_rf", {}), frozenset({"core__rm_rf"}))
    assert json.loads(str(unknown.content))["error"] == "unknown_tool"
    bad = await run_tool_call(_call("core__calculator", {"expression": "1/0"}), frozenset({"core__calculator"}))
    assert json.loads(str(bad.content)) == {"error": "invalid_arguments", "message": "division by zero"}
    missing = await run_tool_call(_call("core__calculator", {}), frozenset({"core__calculator"}))
    assert json.loads(str(missing.content))["error"] == "invalid_arguments"


@pytest.mark.parametrize("expression", ["__import__('os').system('true')", "a + 1", "2 ** 1000", "[1, 2]", "True + 1"])
def test_calculator_refuses_anything_but_bounded_arithmetic(expression: str) -> None:
    with pytest.raises(ToolArgumentError):
        calculate(expression)


def test_search_notes_ranks_by_matching_terms_deterministically() -> None:
    matches = search_notes_sync("how many credits per dollar")
    assert matches[0]["id"] == "credits"
    assert search_notes_sync("how many credits per dollar") == matches
    assert search_notes_sync("zebra unicorn") == []
    with pytest.raises(ToolArgumentError):
        search_notes_sync("the of")


async def test_current_time_is_now_in_the_asked_zone() -> None:
    allowed = frozenset({"core__get_current_time"})
    message = await run_tool_call(_call("core__get_current_time", {"timezone": "Asia/Tokyo"}), allowed)
    result = json.loads(str(message.content))
    now = datetime.fromisoformat(result["now"])
    assert now.utcoffset() is not None and now.utcoffset().total_seconds() == 9 * 3600  # type: ignore[union-attr]
    assert abs((now - datetime.now(now.tzinfo)).total_seconds()) < 60
    bad = await run_tool_call(_call("core__get_current_time", {"timezone": "Mars/Olympus"}), allowed)
    assert json.loads(str(bad.content))["error"] == "invalid_arguments"
