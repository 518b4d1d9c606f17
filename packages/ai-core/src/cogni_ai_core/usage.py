"""UsageFact: one billable LLM call (a usage unit), and the per-call usage event graphs emit.

Decision (contracts.md): every executor, the server's included, reaches the strict bar: a fact
without a usage unit id cannot be billed exactly once, so it is rejected at the boundary.
"""

from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import Field, NonNegativeInt, field_validator

from cogni_ai_core.identity import ExecutorType, SourceSystem
from cogni_ai_core.wire import WireModel

TokenCount = Annotated[NonNegativeInt, Field(strict=True)]


class UsageFact(WireModel):
    """What one LLM call cost, attributed to a run attempt and an account."""

    run_id: Annotated[str, Field(min_length=1)]
    attempt: TokenCount = 0
    usage_unit_id: Annotated[str, Field(min_length=1)]
    source: SourceSystem
    executor_type: ExecutorType
    billing_account_id: Annotated[str, Field(min_length=1)]
    virtual_key_id: Annotated[str, Field(min_length=1)]
    graph_id: str
    provider: str | None = None
    model: str | None = None
    input_tokens: TokenCount | None = None
    output_tokens: TokenCount | None = None
    cache_read_tokens: TokenCount | None = None
    cache_write_tokens: TokenCount | None = None
    cost_usd: Annotated[Decimal, Field(ge=0)] | None = None
    usage_raw: dict[str, Any] | None = None

    @field_validator("usage_unit_id")
    @classmethod
    def _usage_unit_not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("usageUnitId must be a non-empty id (LiteLLM's call id)")
        return value

    @field_validator("graph_id")
    @classmethod
    def _graph_id_namespaced(cls, value: str) -> str:
        if ":" not in value:
            raise ValueError(f"graphId {value!r} must be namespaced 'provider:name'")
        return value

    @property
    def source_reference(self) -> str:
        """The idempotency key of the charge this fact produces."""
        return source_reference(self.run_id, self.attempt, self.usage_unit_id)


def source_reference(run_id: str, attempt: int, usage_unit_id: str) -> str:
    """`runId/attempt/usageUnitId`: unique per (source_system) in charge_receipts."""
    return f"{run_id}/{attempt}/{usage_unit_id}"


LLM_CALL_USAGE_TYPE = "usage"


class LlmCallUsage(WireModel):
    """The `custom` stream event a graph emits after every LLM call (`{"type": "usage", ...}`).

    It carries what LiteLLM reported for that call: its call id (the usage unit id) and its
    cost (response header, or the final streaming chunk's `usage.cost`). Whoever runs the
    graph turns it into a UsageFact with `to_usage_fact`, in-process and on the server alike.
    """

    type: Literal["usage"] = "usage"
    call_id: Annotated[str, Field(min_length=1)]
    model: str | None = None
    model_group: str | None = None
    provider: str | None = None
    input_tokens: TokenCount | None = None
    output_tokens: TokenCount | None = None
    cache_read_tokens: TokenCount | None = None
    cache_write_tokens: TokenCount | None = None
    cost_usd: Annotated[Decimal, Field(ge=0)] | None = None
    node: str | None = None
    provider_response_id: str | None = None
    attempt: Annotated[int, Field(ge=0)] | None = None
    """The run attempt (0-based) whose config made the call: the number its spend-log metadata carries.
    Whoever bills the event uses it over its own idea of the attempt, so the stream's charge and the
    reconciler's always share one idempotency key (a relay that missed or re-read a `metadata` event
    around a retry would otherwise charge the same call under two keys)."""

    def to_usage_fact(
        self,
        *,
        run_id: str,
        attempt: int,
        executor_type: ExecutorType,
        billing_account_id: str,
        virtual_key_id: str,
        graph_id: str,
        source: SourceSystem = SourceSystem.LITELLM,
    ) -> UsageFact:
        """The billable fact for this call, attributed by the caller's trusted run context."""
        raw = self.dump()
        raw.pop("type", None)
        return UsageFact(
            run_id=run_id,
            attempt=attempt,
            usage_unit_id=self.call_id,
            source=source,
            executor_type=executor_type,
            billing_account_id=billing_account_id,
            virtual_key_id=virtual_key_id,
            graph_id=graph_id,
            provider=self.provider,
            model=self.model,
            input_tokens=self.input_tokens,
            output_tokens=self.output_tokens,
            cache_read_tokens=self.cache_read_tokens,
            cache_write_tokens=self.cache_write_tokens,
            cost_usd=self.cost_usd,
            usage_raw=raw,
        )


def is_llm_call_usage(payload: object) -> bool:
    """True when a custom stream payload is a per-call usage event."""
    return isinstance(payload, dict) and payload.get("type") == LLM_CALL_USAGE_TYPE and "callId" in payload


def charge_idempotency_key(fact: UsageFact) -> tuple[str, str]:
    """`(source_system, source_reference)`: unique in charge_receipts, so a replay charges nothing."""
    return (str(fact.source), fact.source_reference)
