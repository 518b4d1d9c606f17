"""The typed run settings stored in ``runs.kwargs``: one writer, one reader, old rows still load."""

from __future__ import annotations

import pytest

from cogni_server.runs.settings import (
    CURRENT_VERSION,
    RunSettings,
    UnknownRunSettings,
    dump_run_settings,
    load_run_settings,
)


def test_round_trip_keeps_every_field() -> None:
    settings = RunSettings(
        input={"messages": [{"role": "user", "content": "hi"}]},
        config={"configurable": {"model": "m"}},
        context={"user": "u"},
        stream_mode=["values", "messages-tuple"],
        stream_resumable=True,
        interrupt_before="*",
        durability="sync",
        on_disconnect="cancel",
        temporary=True,
    )
    stored = dump_run_settings(settings)
    assert stored["version"] == CURRENT_VERSION
    assert load_run_settings(stored) == settings


def test_a_row_written_before_versioning_still_loads() -> None:
    old = {  # what the server stored before the model existed: no version, nulls for unset fields
        "input": {"x": 1},
        "command": None,
        "config": {"configurable": {}},
        "context": {},
        "stream_mode": ["values"],
        "stream_subgraphs": False,
        "stream_resumable": None,
        "interrupt_before": None,
        "interrupt_after": None,
        "checkpoint": None,
        "checkpoint_id": None,
        "durability": None,
        "on_disconnect": "continue",
        "temporary": False,
        "webhook": None,
        "feedback_keys": None,
    }
    loaded = load_run_settings(old)
    assert loaded.input == {"x": 1} and loaded.stream_resumable is False and loaded.version == CURRENT_VERSION


@pytest.mark.parametrize("version", [3, 0, "2"])
def test_an_unknown_version_fails_loudly(version: object) -> None:
    with pytest.raises(UnknownRunSettings, match="version"):
        load_run_settings({"version": version, "input": None})


def test_a_field_this_release_does_not_know_fails_loudly() -> None:
    with pytest.raises(UnknownRunSettings, match="do not load"):
        load_run_settings({"version": 2, "input": None, "surprise": 1})
