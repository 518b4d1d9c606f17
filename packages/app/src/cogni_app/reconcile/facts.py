"""Turning a spend-log record into the UsageFact the ledger charges (pure, no I/O)."""

from decimal import Decimal
from typing import Any

from cogni_ai_core import ExecutorType, SourceSystem, UsageFact
from cogni_app.reconcile.records import SpendLogRecord

UNKNOWN_GRAPH_ID = "unknown:unknown"
NO_VIRTUAL_KEY = "none"


def is_billable(record: SpendLogRecord) -> bool:
    """Failure rows with zero spend are skipped: the upstream was not paid, there is nothing to bill.

    A failure that still cost money (LiteLLM priced it) and every success row (even at zero spend,
    e.g. free models) are billable and get a receipt.
    """
    return not (record.status != "success" and record.spend <= 0)


OUR_KEY_ALIAS = "llm-key:"
"""How LiteLLM's custom-auth hook (cogni_litellm_sink.keyauth) names a per-account key."""


def key_account_of(alias: Any, user_id: Any) -> str | None:
    """The account of a per-account key, from a spend row's key alias and key user (None for another key)."""
    if isinstance(alias, str) and alias.startswith(OUR_KEY_ALIAS) and user_id:
        return str(user_id)
    return None


def account_of(record: SpendLogRecord) -> str | None:
    """The billing account: the per-account key's (checked by the proxy), else LiteLLM's end_user (the request's
    `user`), else the metadata's."""
    if record.key_account:
        return record.key_account
    if record.end_user:
        return record.end_user
    value = record.metadata.get("billing_account_id")
    return str(value) if value else None


def _graph_id(value: Any) -> str:
    if not value:
        return UNKNOWN_GRAPH_ID
    text = str(value)
    return text if ":" in text else f"langgraph:{text}"


def _attempt(value: Any) -> int:
    try:
        return max(int(value), 0)
    except (TypeError, ValueError):
        return 0


def _executor(value: Any, default: ExecutorType) -> ExecutorType:
    try:
        return ExecutorType(str(value)) if value else default
    except ValueError:
        return default


def fact_from_record(
    record: SpendLogRecord,
    *,
    billing_account_id: str,
    default_virtual_key_id: str | None,
    executor_type_default: ExecutorType,
) -> UsageFact:
    """The UsageFact for one call: same idempotency key as the stream's fact for the same call.

    `usageUnitId` = the call id, `costUsd` = spend. Zero spend is reported as "no cost" (None):
    LiteLLM writes 0 when it could not price a call, so for a paid model the ledger writes a
    zero-credit receipt and raises the under-billing alert, and for a free model it charges 0.
    """
    run_id = record.run_id
    if run_id is None:
        raise ValueError(f"spend-log call {record.call_id} has no run_id in its metadata")
    meta = record.metadata
    virtual_key = meta.get("virtual_key_id") or default_virtual_key_id or NO_VIRTUAL_KEY
    raw: dict[str, Any] = {"spendLogStatus": record.status}
    if record.model_group:
        raw["modelGroup"] = record.model_group
    if record.error_code:
        raw["errorCode"] = record.error_code
    return UsageFact(
        run_id=run_id,
        attempt=_attempt(meta.get("attempt")),
        usage_unit_id=record.call_id,
        source=SourceSystem.LITELLM,
        executor_type=_executor(meta.get("executor_type"), executor_type_default),
        billing_account_id=billing_account_id,
        virtual_key_id=str(virtual_key),
        graph_id=_graph_id(meta.get("graph_id")),
        model=record.model,
        input_tokens=record.prompt_tokens,
        output_tokens=record.completion_tokens,
        cost_usd=record.spend if record.spend > Decimal(0) else None,
        usage_raw=raw,
    )
