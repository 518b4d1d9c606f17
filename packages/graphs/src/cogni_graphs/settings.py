"""Where graphs find LiteLLM: read from the environment when a model is built, never from `configurable`.

Secrets (the API key) stay in the process environment; nothing here travels with a run.
"""

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class LlmSettings(BaseSettings):
    """`LITELLM_BASE_URL`, `LITELLM_API_KEY`, `LITELLM_TIMEOUT_SECONDS`, `LITELLM_CONNECT_RETRIES`."""

    model_config = SettingsConfigDict(env_prefix="LITELLM_", extra="ignore")

    base_url: str = "http://127.0.0.1:4000"
    api_key: SecretStr = SecretStr("sk-no-key")
    timeout_seconds: float = Field(default=120.0, gt=0)
    connect_retries: int = Field(default=6, ge=0, le=10)
    """Reconnects after a connection to LiteLLM could not be opened (refused, reset or timed out before the
    request was sent), after 0, 0.5, 1, 2, 4, 8 s: 15.5 s of waiting by default. Never after the request
    went out (it may have been billed)."""
