"""App settings, read once from the environment (pydantic-settings)."""

from __future__ import annotations

import hashlib
import hmac
from decimal import Decimal
from typing import Literal, get_args

from pydantic import Field, FilePath, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from cogni_ai_core import DEFAULT_GRAPH_ID, validate_markup
from cogni_app.executors.router import parse_executor_map

MIN_ADMIN_TOKEN_CHARS = 32
ExecutorName = Literal["inproc", "server"]
EXECUTOR_NAMES: tuple[str, ...] = get_args(ExecutorName)


class DatabaseSettings(BaseSettings):
    """What `cogni-app migrate` needs, and nothing else: DATABASE_URL."""

    model_config = SettingsConfigDict(extra="ignore", case_sensitive=False)

    database_url: str = Field(description="App database (accounts, ledger, receipts). Required.")


class LlmKeySettings(DatabaseSettings):
    """What `cogni-app llm-keys` needs: DATABASE_URL and, to mint or rotate, COGNI_LLM_KEY_SECRET."""

    cogni_llm_key_secret: SecretStr | None = None


class BillingSettings(DatabaseSettings):
    """What billing from the spend log needs (`cogni-app reconcile-worker`, and `serve` on top of the rest)."""

    litellm_base_url: str = "http://127.0.0.1:4000"
    litellm_api_key: SecretStr = SecretStr("")
    user_price_markup_factor: Decimal = Decimal("2.0")
    cogni_spend_sink_database_url: str | None = None
    cogni_models_refresh_seconds: float = Field(default=60.0, gt=0)
    cogni_spend_log_retention_days: int = Field(default=90, ge=0)
    cogni_reconcile_worker_interval_seconds: float = Field(default=1.0, gt=0)
    """How often `cogni-app reconcile-worker` sweeps the spend log from its durable cursor."""
    cogni_reconcile_worker_settle_seconds: float = Field(default=1.0, ge=0)
    """The worker leaves calls younger than this to the app's stream charge (which carries the request id)."""

    @field_validator("user_price_markup_factor")
    @classmethod
    def _markup(cls, value: Decimal) -> Decimal:
        return validate_markup(value)


class AppSettings(BillingSettings):
    """Every knob of `cogni-app serve`; names are the environment variables (case-insensitive)."""

    langgraph_server_url: str = "http://127.0.0.1:8123"
    cogni_jwt_secret: SecretStr | None = None
    cogni_jwt_audience: str = "cogni-agent-server"
    cogni_jwt_ttl_seconds: int = Field(default=300, gt=0, le=3600)
    cogni_admin_token: SecretStr | None = None
    cogni_server_operator_token: SecretStr | None = None
    cogni_deletion_retry_seconds: float = Field(default=5.0, gt=0)
    cogni_server_tls_ca: FilePath | None = None
    cogni_server_tls_cert: FilePath | None = None
    cogni_server_tls_key: FilePath | None = None
    cogni_executor: ExecutorName = "server"
    cogni_executor_map: str = ""
    cogni_default_graph_id: str = DEFAULT_GRAPH_ID
    cogni_reconcile_delay_seconds: float = Field(default=2.0, ge=0)
    cogni_reconcile_interval_seconds: float = Field(default=300.0, ge=0)
    cogni_reconcile_catchup_seconds: float = Field(default=120.0, ge=0)
    """After start, sweep every `cogni_reconcile_catchup_interval_seconds` for this long (0: no catch-up)."""
    cogni_reconcile_catchup_interval_seconds: float = Field(default=1.0, gt=0)
    cogni_first_event_timeout_seconds: float = Field(default=15.0, gt=0)
    cogni_max_request_body_bytes: int = Field(default=1_048_576, gt=0)
    cogni_credit_hold_ttl_seconds: float = Field(default=900.0, gt=0)
    cogni_llm_key_secret: SecretStr | None = None
    """Derives each account's LiteLLM key (docs/compliance.md, "Key lifecycle"); unset = the shared LITELLM_API_KEY."""
    cogni_console_server_url: str | None = None
    """The Agent Server's address as the operator's browser reaches it (default: LANGGRAPH_SERVER_URL)."""

    @field_validator("cogni_admin_token")
    @classmethod
    def _admin_token(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and value.get_secret_value() and len(value.get_secret_value()) < MIN_ADMIN_TOKEN_CHARS:
            raise ValueError(f"COGNI_ADMIN_TOKEN must be at least {MIN_ADMIN_TOKEN_CHARS} characters")
        return value or None

    @field_validator("cogni_llm_key_secret")
    @classmethod
    def _llm_key_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and value.get_secret_value() and len(value.get_secret_value()) < MIN_ADMIN_TOKEN_CHARS:
            raise ValueError(f"COGNI_LLM_KEY_SECRET must be at least {MIN_ADMIN_TOKEN_CHARS} characters")
        return value or None

    @field_validator("cogni_executor_map")
    @classmethod
    def _executor_map(cls, value: str) -> str:
        for provider in parse_executor_map(value).values():
            if provider not in EXECUTOR_NAMES:
                raise ValueError(
                    f"COGNI_EXECUTOR_MAP names unknown provider {provider!r} ({' or '.join(EXECUTOR_NAMES)})"
                )
        return value

    @model_validator(mode="after")
    def _server_needs_jwt(self) -> AppSettings:
        if "server" in self.executor_routes().values() and not self.cogni_jwt_secret:
            raise ValueError("COGNI_JWT_SECRET is required when any graph runs on the Agent Server")
        return self

    @model_validator(mode="after")
    def _tls_pair(self) -> AppSettings:
        if (self.cogni_server_tls_cert is None) != (self.cogni_server_tls_key is None):
            raise ValueError("COGNI_SERVER_TLS_CERT and COGNI_SERVER_TLS_KEY go together: set both or neither")
        return self

    def executor_routes(self) -> dict[str, str]:
        """Graph namespace (or exact graph id) -> provider; the `langgraph` namespace defaults to COGNI_EXECUTOR."""
        return {"langgraph": self.cogni_executor, **parse_executor_map(self.cogni_executor_map)}

    def admin_token_matches(self, presented: str) -> bool:
        """SHA-256 both sides and compare in constant time; False when no admin token is configured."""
        if self.cogni_admin_token is None:
            return False
        expected = hashlib.sha256(self.cogni_admin_token.get_secret_value().encode()).digest()
        return hmac.compare_digest(expected, hashlib.sha256(presented.encode()).digest())
