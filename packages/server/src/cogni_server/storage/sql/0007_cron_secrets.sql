-- Issue 8: a cron's per-account LiteLLM key (header X-Cogni-LLM-Key on its creation or a PATCH), kept for as
-- long as the cron lives, because its runs start long after the request. Fernet ciphertext under
-- COGNI_SECRETS_KEY only (storage/run_secrets.py); each tick copies it into its run's run_secrets row. It goes
-- with its cron (cascade): a DELETE of the cron, a tenant purge. Never in `crons` itself, so no cron answer
-- (get, search, patch) can carry it.
CREATE TABLE cron_secrets (
    cron_id uuid PRIMARY KEY REFERENCES crons (cron_id) ON DELETE CASCADE,
    llm_key bytea NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
