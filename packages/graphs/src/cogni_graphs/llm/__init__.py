"""The LiteLLM-bound chat model and its factory."""

from cogni_graphs.llm.capture import MODEL_GROUP_HEADER, RESPONSE_COST_HEADER
from cogni_graphs.llm.errors import CALL_ID_HEADER, LlmCallError
from cogni_graphs.llm.factory import SPEND_LOGS_METADATA_HEADER, chat_model
from cogni_graphs.llm.model import LITELLM_METADATA_KEY, LiteLLMChatModel, emit_usage

__all__ = [
    "CALL_ID_HEADER",
    "LITELLM_METADATA_KEY",
    "MODEL_GROUP_HEADER",
    "RESPONSE_COST_HEADER",
    "SPEND_LOGS_METADATA_HEADER",
    "LiteLLMChatModel",
    "LlmCallError",
    "chat_model",
    "emit_usage",
]
