"""The pure mapping from LiteLLM's standard_logging_object to a spend-log row."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from cogni_litellm_sink import COLUMNS, row_from_callback_kwargs, row_from_standard_logging_object
from cogni_litellm_sink.schema import UPSERT

DATA = Path(__file__).parent / "data"


def _payload(kind: str) -> dict[str, Any]:
    return json.loads((DATA / f"standard_logging_object_{kind}.json").read_text())


def test_success_payload_maps_every_column() -> None:
    row = row_from_standard_logging_object(_payload("success"))
    assert row.call_id == "043e9306-4c36-4837-83e5-5433696607e2"
    assert row.provider_response_id == "chatcmpl-cbb0de147db3402c9873a4a9a72f6b4a"
    assert row.end_user == "acct-1"
    assert row.spend == Decimal("0.00000195")
    assert (row.prompt_tokens, row.completion_tokens, row.total_tokens) == (1, 3, 4)
    assert row.model == "gpt-4o-mini"
    assert row.model_group == "gpt-4o-mini"
    assert row.status == "success"
    assert row.error_code is None
    assert row.spend_logs_metadata == {"run_id": "run-1", "billing_account_id": "acct-1"}
    assert row.request_tags == ["User-Agent: python-httpx", "User-Agent: python-httpx/0.28.1"]
    assert row.start_time == datetime.fromtimestamp(1795476019.577456, tz=UTC)
    assert row.start_time is not None and row.end_time is not None and row.start_time < row.end_time


def test_failure_payload_costs_nothing_and_keeps_attribution() -> None:
    payload = _payload("failure")
    payload["response_cost"] = 0.5  # even if LiteLLM estimated something, a failure is free
    row = row_from_standard_logging_object(payload)
    assert row.status == "failure"
    assert row.spend == 0
    assert row.error_code == "500"
    assert row.provider_response_id is None  # `id` was only LiteLLM's call id
    assert row.end_user == "acct-1"
    assert row.spend_logs_metadata["run_id"] == "run-1"


def test_client_disconnect_is_a_success_with_error_code_499() -> None:
    payload = _payload("success")
    payload["error_information"] = {"error_code": "499", "error_class": "ClientDisconnect"}
    row = row_from_standard_logging_object(payload)
    assert (row.status, row.error_code, row.spend) == ("success", "499", Decimal("0.00000195"))


def test_metadata_given_as_json_text_is_parsed_and_junk_is_kept_raw() -> None:
    payload = _payload("success")
    payload["metadata"]["spend_logs_metadata"] = '{"run_id": "r9"}'
    assert row_from_standard_logging_object(payload).spend_logs_metadata == {"run_id": "r9"}
    payload["metadata"]["spend_logs_metadata"] = "not json"
    assert row_from_standard_logging_object(payload).spend_logs_metadata == {"raw": "not json"}
    payload["metadata"]["spend_logs_metadata"] = None
    assert row_from_standard_logging_object(payload).spend_logs_metadata == {}


def test_missing_call_id_is_refused() -> None:
    payload = _payload("success")
    payload["litellm_call_id"] = None
    with pytest.raises(ValueError, match="litellm_call_id"):
        row_from_standard_logging_object(payload)


def test_callback_kwargs_without_payload_fall_back_to_the_call_id() -> None:
    class Boom(Exception):
        status_code = 429

    row = row_from_callback_kwargs(
        {"litellm_call_id": "c-1", "model": "gpt-4o-mini", "user": "acct-7", "exception": Boom()},
        status="failure",
    )
    assert (row.call_id, row.status, row.error_code, row.end_user, row.spend) == (
        "c-1", "failure", "429", "acct-7", Decimal(0),
    )  # fmt: skip


def test_row_values_line_up_with_the_upsert_columns() -> None:
    values = row_from_standard_logging_object(_payload("success")).values()
    assert len(values) == len(COLUMNS) == UPSERT.count("%s")
    assert json.loads(values[COLUMNS.index("spend_logs_metadata")]) == {
        "run_id": "run-1",
        "billing_account_id": "acct-1",
    }
