"""Reading the run's `GraphRunConfig` out of a LangGraph `RunnableConfig`, with a clear error when absent."""

from typing import Any

from langchain_core.runnables import RunnableConfig
from pydantic import ValidationError

from cogni_ai_core import AiExecutionError, GraphRunConfig


def configurable_of(config: RunnableConfig | None) -> dict[str, Any]:
    """The `configurable` dict of a config (empty when there is none)."""
    return dict((config or {}).get("configurable") or {})


def run_config_of(config: RunnableConfig | None) -> GraphRunConfig:
    """The run's identity and policy; a missing or bad key is an `invalid_request`, naming the key."""
    try:
        return GraphRunConfig.from_configurable(configurable_of(config))
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors())
        raise AiExecutionError(
            "invalid_request",
            f"config.configurable is not a valid run config ({problems}); "
            "required: model, runId, billingAccountId, virtualKeyId",
        ) from exc
