"""Server settings, read once from the environment (pydantic-settings).

Unset optional services fall back to embedded defaults (embedded Postgres, in-memory broker); a set
but unreachable service is a start-up error, never a silent fallback.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Every knob of the Agent Server; see docs/server.md for the list with defaults."""

    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True)

    database_url: str | None = Field(default=None, validation_alias="LANGGRAPH_DATABASE_URL")
    data_dir: Path = Field(default=Path(".data"), validation_alias="COGNI_DATA_DIR")
    redis_url: str | None = Field(default=None, validation_alias="REDIS_URL")
    redis_key_prefix: str = Field(default="cogni", validation_alias="COGNI_REDIS_KEY_PREFIX")
    broker_outage_seconds: float = Field(default=30.0, gt=0, validation_alias="COGNI_BROKER_OUTAGE_SECONDS")
    host: str = Field(default="127.0.0.1", validation_alias="COGNI_SERVER_HOST")
    port: int = Field(default=8123, validation_alias="COGNI_SERVER_PORT")
    # the event loop uvicorn serves on: "auto" (uvloop when installed), "asyncio" or "uvloop"
    event_loop: Literal["auto", "asyncio", "uvloop"] = Field(default="auto", validation_alias="COGNI_EVENT_LOOP")
    config_path: Path = Field(default=Path("langgraph.json"), validation_alias="LANGGRAPH_CONFIG")

    auth_mode: str = Field(default="none", validation_alias="COGNI_AUTH_MODE")
    api_key: str | None = Field(default=None, validation_alias="LANGGRAPH_API_KEY")
    api_keys: str | None = Field(default=None, validation_alias="COGNI_API_KEYS")
    jwt_secret: str | None = Field(default=None, validation_alias="COGNI_JWT_SECRET")
    jwt_public_key: str | None = Field(default=None, validation_alias="COGNI_JWT_PUBLIC_KEY")
    jwt_algorithm: str = Field(default="HS256", validation_alias="COGNI_JWT_ALGORITHM")
    jwt_audience: str | None = Field(default=None, validation_alias="COGNI_JWT_AUDIENCE")
    jwt_issuer: str | None = Field(default=None, validation_alias="COGNI_JWT_ISSUER")

    n_jobs_per_worker: int = Field(
        default=10, ge=1, validation_alias=AliasChoices("N_JOBS_PER_WORKER", "COGNI_N_JOBS_PER_WORKER")
    )
    lease_seconds: float = Field(default=30.0, gt=0, validation_alias="COGNI_LEASE_SECONDS")
    heartbeat_seconds: float = Field(default=5.0, gt=0, validation_alias="COGNI_HEARTBEAT_SECONDS")
    sweep_seconds: float = Field(default=5.0, gt=0, validation_alias="COGNI_SWEEP_SECONDS")
    poll_seconds: float = Field(default=2.0, gt=0, validation_alias="COGNI_POLL_SECONDS")
    drain_seconds: float = Field(default=20.0, ge=0, validation_alias="COGNI_DRAIN_SECONDS")
    max_attempts: int = Field(default=3, ge=1, validation_alias="COGNI_MAX_ATTEMPTS")
    run_timeout_seconds: float = Field(default=0.0, ge=0, validation_alias="COGNI_RUN_TIMEOUT_SECONDS")
    stream_heartbeat_seconds: float = Field(default=5.0, gt=0, validation_alias="COGNI_STREAM_HEARTBEAT_SECONDS")
    # thread-streaming protocol: the per-thread event log's retention (events per thread, seconds idle)
    thread_stream_max_events: int = Field(default=10_000, ge=100, validation_alias="COGNI_THREAD_STREAM_MAX_EVENTS")
    thread_stream_ttl_seconds: float = Field(default=3600.0, gt=0, validation_alias="COGNI_THREAD_STREAM_TTL_SECONDS")
    # in-memory broker and thread log only (no REDIS_URL): what they retain, in MiB (oldest dropped first)
    broker_memory_mb: float = Field(default=128.0, gt=0, validation_alias="COGNI_BROKER_MEMORY_MB")
    thread_stream_memory_mb: float = Field(default=32.0, gt=0, validation_alias="COGNI_THREAD_STREAM_MEMORY_MB")
    malloc_trim_seconds: float = Field(default=30.0, ge=0, validation_alias="COGNI_MALLOC_TRIM_SECONDS")
    gc_freeze: bool = Field(default=True, validation_alias="COGNI_GC_FREEZE")  # see cogni_server/gcpause.py
    # diagnosis only (cogni_server/memdiag.py): tracemalloc snapshots in this directory, off when unset
    tracemalloc_dir: Path | None = Field(default=None, validation_alias="COGNI_TRACEMALLOC_DIR")
    tracemalloc_seconds: float = Field(default=300.0, gt=0, validation_alias="COGNI_TRACEMALLOC_SECONDS")
    tracemalloc_delay_seconds: float = Field(default=0.0, ge=0, validation_alias="COGNI_TRACEMALLOC_DELAY_SECONDS")
    tracemalloc_frames: int = Field(default=16, ge=1, le=100, validation_alias="COGNI_TRACEMALLOC_FRAMES")
    max_body_bytes: int = Field(default=10 * 1024 * 1024, gt=0, validation_alias="COGNI_MAX_BODY_BYTES")
    pool_min_size: int = Field(default=2, ge=1, validation_alias="COGNI_POOL_MIN_SIZE")
    pool_max_size: int = Field(default=20, ge=1, validation_alias="COGNI_POOL_MAX_SIZE")
    database_connect_timeout: float = Field(default=5.0, gt=0, validation_alias="COGNI_DATABASE_CONNECT_TIMEOUT")

    run_workers: bool = Field(default=True, validation_alias="COGNI_RUN_WORKERS")
    serve_api: bool = Field(default=True, validation_alias="COGNI_SERVE_API")
    log_level: str = Field(default="info", validation_alias="COGNI_LOG_LEVEL")
    cors_allow_origins: str | None = Field(default=None, validation_alias="COGNI_CORS_ALLOW_ORIGINS")

    # The store's embeddings when langgraph.json's store.index.embed is "provider:model" (LiteLLM proxy).
    litellm_base_url: str | None = Field(default=None, validation_alias="LITELLM_BASE_URL")
    litellm_api_key: str | None = Field(default=None, validation_alias="LITELLM_API_KEY")
    embeddings_timeout_seconds: float = Field(default=60.0, gt=0, validation_alias="COGNI_EMBEDDINGS_TIMEOUT_SECONDS")
    # crons, webhooks, thread TTL (docs/server.md "Crons", "Webhooks", "Thread TTL")
    cron_poll_seconds: float = Field(default=1.0, gt=0, validation_alias="COGNI_CRON_POLL_SECONDS")
    cron_allow_seconds: bool = Field(default=False, validation_alias="COGNI_CRON_ALLOW_SECONDS")
    webhook_secret: str | None = Field(default=None, validation_alias="COGNI_WEBHOOK_SECRET")
    webhook_allowed_domains: str | None = Field(default=None, validation_alias="COGNI_WEBHOOK_ALLOWED_DOMAINS")
    webhook_max_attempts: int = Field(default=5, ge=1, validation_alias="COGNI_WEBHOOK_MAX_ATTEMPTS")
    webhook_timeout_seconds: float = Field(default=30.0, gt=0, validation_alias="COGNI_WEBHOOK_TIMEOUT_SECONDS")
    webhook_backoff_seconds: float = Field(default=2.0, gt=0, validation_alias="COGNI_WEBHOOK_BACKOFF_SECONDS")
    webhook_poll_seconds: float = Field(default=1.0, gt=0, validation_alias="COGNI_WEBHOOK_POLL_SECONDS")
    # finished outbox rows (delivered, failed, refused) are kept this long for inspection, then pruned
    webhook_retention_hours: float = Field(default=168.0, gt=0, validation_alias="COGNI_WEBHOOK_RETENTION_HOURS")
    thread_ttl_sweep_seconds: float | None = Field(
        default=None, gt=0, validation_alias="COGNI_THREAD_TTL_SWEEP_SECONDS"
    )
    # tenant purge (docs/compliance.md): the operator routes' bearer token (unset: the routes answer
    # 404) and how long one purge pass waits for the tenant's cancelled runs to stop
    operator_token: str | None = Field(default=None, validation_alias="COGNI_OPERATOR_TOKEN")
    purge_stop_seconds: float = Field(default=30.0, ge=0, validation_alias="COGNI_PURGE_STOP_SECONDS")
    # mTLS (docs/compliance.md, `# mTLS`): serve HTTPS; with a client CA, only callers presenting a certificate
    # it signed complete the handshake (beside, not instead of, the JWT or API key of COGNI_AUTH_MODE).
    tls_certfile: Path | None = Field(default=None, validation_alias="COGNI_TLS_CERTFILE")
    tls_keyfile: Path | None = Field(default=None, validation_alias="COGNI_TLS_KEYFILE")
    tls_client_ca: Path | None = Field(default=None, validation_alias="COGNI_TLS_CLIENT_CA")
    # per-account LLM keys (docs/compliance.md, "Key lifecycle"): Fernet key(s) sealing a run's X-Cogni-LLM-Key
    # while it runs; unset = a run sent with a key is refused (422)
    secrets_key: SecretStr | None = Field(default=None, validation_alias="COGNI_SECRETS_KEY")

    @field_validator("secrets_key")
    @classmethod
    def _secrets_key(cls, value: SecretStr | None) -> SecretStr | None:
        """Fernet keys or nothing: a bad value stops start-up here, not at the first run with a key."""
        if value is None or not value.get_secret_value().strip():
            return None
        from cogni_server.storage.run_secrets import SecretBox

        SecretBox(value.get_secret_value())  # raises SecretsKeyError (a ValueError) naming the variable
        return value

    @model_validator(mode="after")
    def _tls_files(self) -> Settings:
        """Certificate and key together; a client CA only on a TLS server; every named file exists."""
        if (self.tls_certfile is None) != (self.tls_keyfile is None):
            raise ValueError("COGNI_TLS_CERTFILE and COGNI_TLS_KEYFILE go together: set both or neither")
        if self.tls_client_ca is not None and self.tls_certfile is None:
            raise ValueError("COGNI_TLS_CLIENT_CA needs COGNI_TLS_CERTFILE and COGNI_TLS_KEYFILE (mTLS is on TLS)")
        for name, path in (
            ("COGNI_TLS_CERTFILE", self.tls_certfile),
            ("COGNI_TLS_KEYFILE", self.tls_keyfile),
            ("COGNI_TLS_CLIENT_CA", self.tls_client_ca),
        ):
            if path is not None and not path.is_file():
                raise ValueError(f"{name} names {str(path)!r}, which is not a file")
        return self

    @model_validator(mode="after")
    def _leases_cover_the_drain(self) -> Settings:
        """A held run's lease must outlive both a missed renewal and the whole drain: at SIGTERM a
        lease has at least ``lease - heartbeat`` seconds left, so a drain shorter than that cannot
        let another instance take a run still executing here, even if renewals fail meanwhile."""
        lease, heartbeat, drain = self.lease_seconds, self.heartbeat_seconds, self.drain_seconds
        if heartbeat >= lease:
            raise ValueError(
                f"COGNI_HEARTBEAT_SECONDS ({heartbeat:g}) must be shorter than COGNI_LEASE_SECONDS ({lease:g}):"
                " leases would lapse between two renewals"
            )
        if drain >= lease - heartbeat:
            raise ValueError(
                f"COGNI_DRAIN_SECONDS ({drain:g}) must be shorter than COGNI_LEASE_SECONDS -"
                f" COGNI_HEARTBEAT_SECONDS ({lease:g} - {heartbeat:g} = {lease - heartbeat:g}):"
                " a lease could lapse while its run is still draining here"
            )
        return self

    @model_validator(mode="after")
    def _operator_token_is_no_tenant_credential(self) -> Settings:
        """The operator token opens every tenant's purge: it must not also be a tenant's key."""
        token = (self.operator_token or "").strip()
        if not token:
            self.operator_token = None
            return self
        if token in self.api_key_map() or token in (self.jwt_secret or "", self.jwt_public_key or ""):
            raise ValueError(
                "COGNI_OPERATOR_TOKEN must not be a tenant credential (it equals an API key or the JWT key):"
                " give the operator a token of its own"
            )
        self.operator_token = token
        return self

    def api_key_map(self) -> dict[str, str]:
        """key -> tenant from COGNI_API_KEYS ("k1:tenantA,k2:tenantB") and/or LANGGRAPH_API_KEY."""
        from cogni_server.auth import DEFAULT_TENANT, parse_api_keys

        keys: dict[str, str] = {}
        if self.api_keys:
            keys.update(parse_api_keys(self.api_keys))
        if self.api_key:
            keys.setdefault(self.api_key.strip(), DEFAULT_TENANT)
        return keys
