"""Span attributes for our own records, named once so every process describes them alike."""

from __future__ import annotations

from typing import Any

from cogni_ai_core.usage import UsageFact


def usage_fact_attributes(fact: UsageFact, provenance: Any = None) -> dict[str, str | int | float]:
    """A usage unit being billed: its run, LiteLLM call id, model, tokens and cost (no account key)."""
    out: dict[str, str | int | float] = {
        "cogni.run_id": fact.run_id,
        "cogni.run.attempt": fact.attempt,
        "litellm.call_id": fact.usage_unit_id,
        "cogni.graph_id": fact.graph_id,
    }
    if provenance is not None:
        out["cogni.billing.provenance"] = str(provenance)
    if fact.model:
        out["gen_ai.request.model"] = fact.model
    if fact.input_tokens is not None:
        out["gen_ai.usage.input_tokens"] = fact.input_tokens
    if fact.output_tokens is not None:
        out["gen_ai.usage.output_tokens"] = fact.output_tokens
    if fact.cost_usd is not None:
        out["cogni.llm.cost_usd"] = float(fact.cost_usd)
    return out
