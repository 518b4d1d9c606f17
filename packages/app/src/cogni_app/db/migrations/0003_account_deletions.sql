-- Issue 8: a user's data deletion, one tracked job per billing account (cogni_app.deletion, docs/compliance.md).
-- The row is also the deletion record that is kept: who asked, when, and the counts of every step. It holds
-- no content: the account id, the hash of the status token shown to the user once, step names and counts.
CREATE TABLE account_deletions (
    billing_account_id text PRIMARY KEY,
    status             text NOT NULL CHECK (status IN ('in_progress', 'done')),
    requested_by       text NOT NULL CHECK (requested_by IN ('user', 'operator')),
    status_token_hash  text UNIQUE CHECK (status_token_hash ~ '^[0-9a-f]{64}$'),
    steps              jsonb NOT NULL DEFAULT '{}'::jsonb,
    passes             integer NOT NULL DEFAULT 0,
    last_error         text,
    requested_at       timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    completed_at       timestamptz
);
CREATE INDEX account_deletions_open_idx ON account_deletions (requested_at) WHERE status = 'in_progress';
