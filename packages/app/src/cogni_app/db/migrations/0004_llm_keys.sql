-- Issue 8: one LiteLLM key per billing account (cogni_app.billing.llm_keys, docs/compliance.md "Key lifecycle").
-- Only the key's SHA-256 is stored; LiteLLM's custom-auth hook (cogni_litellm_sink.keyauth) reads this table
-- read-only by key_hash, so the columns it selects (id, billing_account_id, key_hash, rpm_limit, tpm_limit,
-- revoked_at) are a contract with the proxy. A rotation revokes the old row and inserts its successor
-- (replaces = the old id) in one transaction; at most one key per account is active.
CREATE TABLE llm_keys (
    id                 text PRIMARY KEY DEFAULT gen_random_uuid()::text,
    billing_account_id text NOT NULL REFERENCES billing_accounts (id) ON DELETE CASCADE,
    key_hash           text NOT NULL UNIQUE CHECK (key_hash ~ '^[0-9a-f]{64}$'),
    key_prefix         text NOT NULL,
    rpm_limit          integer CHECK (rpm_limit > 0),
    tpm_limit          integer CHECK (tpm_limit > 0),
    replaces           text REFERENCES llm_keys (id) ON DELETE SET NULL,
    created_at         timestamptz NOT NULL DEFAULT now(),
    revoked_at         timestamptz
);
CREATE UNIQUE INDEX llm_keys_one_active_idx ON llm_keys (billing_account_id) WHERE revoked_at IS NULL;
CREATE INDEX llm_keys_account_idx ON llm_keys (billing_account_id, created_at);
