"""The spend-log table: the contract between the sink (writer) and the app's reconciler (reader)."""

from __future__ import annotations

TABLE = "litellm_spend_logs"

COLUMNS: tuple[str, ...] = (
    "call_id",
    "provider_response_id",
    "end_user",
    "spend",
    "prompt_tokens",
    "completion_tokens",
    "total_tokens",
    "model",
    "model_group",
    "status",
    "error_code",
    "spend_logs_metadata",
    "request_tags",
    "start_time",
    "end_time",
    "key_hash",
    "key_alias",
    "key_user_id",
)
"""The columns the sink writes; `inserted_at` is filled by the database."""

DDL = f"""
CREATE TABLE IF NOT EXISTS {TABLE} (
    call_id              text PRIMARY KEY,
    provider_response_id text,
    end_user             text,
    spend                numeric NOT NULL DEFAULT 0,
    prompt_tokens        integer NOT NULL DEFAULT 0,
    completion_tokens    integer NOT NULL DEFAULT 0,
    total_tokens         integer NOT NULL DEFAULT 0,
    model                text,
    model_group          text,
    status               text NOT NULL CHECK (status IN ('success', 'failure')),
    error_code           text,
    spend_logs_metadata  jsonb NOT NULL DEFAULT '{{}}'::jsonb,
    request_tags         jsonb NOT NULL DEFAULT '[]'::jsonb,
    start_time           timestamptz,
    end_time             timestamptz,
    inserted_at          timestamptz NOT NULL DEFAULT now(),
    key_hash             text,
    key_alias            text,
    key_user_id          text
);
ALTER TABLE {TABLE} ADD COLUMN IF NOT EXISTS key_hash text;
ALTER TABLE {TABLE} ADD COLUMN IF NOT EXISTS key_alias text;
ALTER TABLE {TABLE} ADD COLUMN IF NOT EXISTS key_user_id text;
CREATE INDEX IF NOT EXISTS {TABLE}_inserted_at_idx ON {TABLE} (inserted_at);
CREATE INDEX IF NOT EXISTS {TABLE}_end_user_idx ON {TABLE} (end_user, end_time);
CREATE INDEX IF NOT EXISTS {TABLE}_position_idx ON {TABLE} (inserted_at, call_id);
CREATE INDEX IF NOT EXISTS {TABLE}_run_idx ON {TABLE} ((spend_logs_metadata->>'run_id'), end_user);
"""
"""Idempotent DDL; run it under `LOCK_KEY` so concurrent creators do not collide.

The reconciler's two reads have an index each: its sweep reads on from its cursor in `(inserted_at,
call_id)` order (`_position_idx`), its post-run pass looks a run's calls up by `spend_logs_metadata->>'run_id'`
and `end_user` (`_run_idx`). `key_hash`, `key_alias`, `key_user_id` (the LiteLLM key that made the call: its
SHA-256, alias and account, as LiteLLM's auth resolved it) were added later; `ADD COLUMN IF NOT EXISTS`
brings an older table up to date."""

# Retention is the reader's: only the app's reconciler knows which rows it has passed (its cursor), so it
# deletes them (COGNI_SPEND_LOG_RETENTION_DAYS, cogni_app.reconcile.sink_source); the sink only writes.

LOCK_KEY = 0x5E_3D_10_65  # pg_advisory_xact_lock key serialising the DDL

_updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in COLUMNS if c != "call_id")
UPSERT = (
    f"INSERT INTO {TABLE} ({', '.join(COLUMNS)}) VALUES ({', '.join(['%s'] * len(COLUMNS))}) "
    f"ON CONFLICT (call_id) DO UPDATE SET {_updates} "
    f"WHERE {TABLE}.status <> 'success' OR EXCLUDED.status = 'success'"
)
"""Writing a row twice leaves one row; a late failure event never overwrites a recorded success."""
