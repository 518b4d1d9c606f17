"""The LLM factory: the chat model a graph node uses for this run, pointed at LiteLLM and attributed.

Every request carries `user = billingAccountId` (LiteLLM's `end_user`) and the header
`x-litellm-spend-logs-metadata` (JSON of `GraphRunConfig.spend_logs_metadata`), so each spend log row
can be traced back to its run, attempt and account. The model comes from `<node>__model` or `model`.

The key LiteLLM sees is the run's per-account key when the Agent Server handed one over (`configurable`
`__cogni_llm_key`, see `cogni_ai_core.llm_keys`), else `LITELLM_API_KEY`.
"""

import json

from langchain_core.runnables import RunnableConfig
from pydantic import SecretStr

from cogni_ai_core import LLM_KEY_CONFIGURABLE
from cogni_graphs.llm.model import LiteLLMChatModel
from cogni_graphs.run_config import configurable_of, run_config_of
from cogni_graphs.settings import LlmSettings

SPEND_LOGS_METADATA_HEADER = "x-litellm-spend-logs-metadata"


def chat_model(
    config: RunnableConfig, *, graph: str, node: str, settings: LlmSettings | None = None
) -> LiteLLMChatModel:
    """Build the model for `node` of catalog graph `graph` from the run's config and the environment."""
    run = run_config_of(config)
    env = settings or LlmSettings()
    configurable = configurable_of(config)
    thread_id = configurable.get("thread_id")
    run_key = configurable.get(LLM_KEY_CONFIGURABLE)
    metadata = run.spend_logs_metadata(
        graph_id=run.graph_id or f"langgraph:{graph}",
        thread_id=str(thread_id) if thread_id is not None else None,
    )
    return LiteLLMChatModel(
        model=run.model_for(node),
        base_url=env.base_url,
        api_key=SecretStr(run_key) if isinstance(run_key, str) and run_key else env.api_key,
        timeout_seconds=env.timeout_seconds,
        connect_retries=env.connect_retries,
        end_user=run.end_user(),
        extra_headers={SPEND_LOGS_METADATA_HEADER: json.dumps(metadata, separators=(",", ":"))},
        node=node,
        attempt=run.attempt,
    )
