"""Where graphs find LiteLLM: read from the environment when a model is built, never from `configurable`.

Secrets (the API key) stay in the process environment; nothing here travels with a run.
"""

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class LlmSettings(BaseSettings):
    """`LITELLM_BASE_URL`, `LITELLM_API_KEY`, `LITELLM_TIMEOUT_SECONDS`."""

    model_config = SettingsConfigDict(env_prefix="LITELLM_", extra="ignore")

    base_url: str = "http://127.0.0.1:4000"
    api_key: SecretStr = SecretStr("sk-no-key")
    timeout_seconds: float = Field(default=120.0, gt=0)
