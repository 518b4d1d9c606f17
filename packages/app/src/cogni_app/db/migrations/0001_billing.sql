-- Billing ledger: accounts, virtual keys, API keys (hashes only), the credit ledger, charge receipts.
-- Ids are text (uuid strings) so that ids minted elsewhere (LiteLLM end_user, JWT sub) compare as-is.

CREATE TABLE billing_accounts (
    id              text PRIMARY KEY DEFAULT gen_random_uuid()::text,
    name            text NOT NULL,
    balance_credits bigint NOT NULL DEFAULT 0,
    created_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE virtual_keys (
    id                 text PRIMARY KEY DEFAULT gen_random_uuid()::text,
    billing_account_id text NOT NULL REFERENCES billing_accounts (id) ON DELETE CASCADE,
    label              text NOT NULL DEFAULT 'default',
    created_at         timestamptz NOT NULL DEFAULT now(),
    UNIQUE (id, billing_account_id)
);
CREATE INDEX virtual_keys_account_idx ON virtual_keys (billing_account_id, created_at);

CREATE TABLE api_keys (
    id                 text PRIMARY KEY DEFAULT gen_random_uuid()::text,
    key_hash           text NOT NULL UNIQUE CHECK (key_hash ~ '^[0-9a-f]{64}$'),
    key_prefix         text NOT NULL,
    billing_account_id text NOT NULL,
    virtual_key_id     text NOT NULL,
    created_at         timestamptz NOT NULL DEFAULT now(),
    revoked_at         timestamptz,
    FOREIGN KEY (virtual_key_id, billing_account_id)
        REFERENCES virtual_keys (id, billing_account_id) ON DELETE CASCADE
);

CREATE TABLE credit_ledger (
    id                 bigserial PRIMARY KEY,
    billing_account_id text NOT NULL REFERENCES billing_accounts (id) ON DELETE CASCADE,
    virtual_key_id     text,
    amount             bigint NOT NULL,
    balance_after      bigint NOT NULL,
    reason             text NOT NULL,
    reference          text NOT NULL,
    metadata           jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at         timestamptz NOT NULL DEFAULT now()
);
-- One ledger row per receipt (reference = receipt id).
CREATE UNIQUE INDEX credit_ledger_charge_reference_key ON credit_ledger (reference) WHERE reason = 'charge_receipt';
-- Grants and adjustments are idempotent per account on (reason, reference).
CREATE UNIQUE INDEX credit_ledger_other_reference_key
    ON credit_ledger (billing_account_id, reason, reference) WHERE reason <> 'charge_receipt';
CREATE INDEX credit_ledger_account_idx ON credit_ledger (billing_account_id, created_at);

CREATE TABLE charge_receipts (
    id                 text PRIMARY KEY DEFAULT gen_random_uuid()::text,
    billing_account_id text NOT NULL REFERENCES billing_accounts (id) ON DELETE CASCADE,
    virtual_key_id     text NOT NULL,
    run_id             text NOT NULL,
    attempt            integer NOT NULL CHECK (attempt >= 0),
    ingress_request_id text,
    litellm_call_id    text NOT NULL,
    charged_credits    bigint NOT NULL CHECK (charged_credits >= 0),
    response_cost_usd  numeric NOT NULL CHECK (response_cost_usd >= 0),
    provenance         text NOT NULL CHECK (provenance IN ('response', 'stream', 'reconcile')),
    charge_reason      text NOT NULL DEFAULT 'llm_usage',
    source_system      text NOT NULL,
    source_reference   text NOT NULL,
    -- What activity needs per run, and the audit trail of the price.
    graph_id           text NOT NULL,
    executor_type      text NOT NULL,
    provider           text,
    model              text,
    input_tokens       integer,
    output_tokens      integer,
    cache_read_tokens  integer,
    cache_write_tokens integer,
    provider_cost_usd  numeric,
    markup             numeric NOT NULL,
    under_billed       boolean NOT NULL DEFAULT false,
    created_at         timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT charge_receipts_idempotency_key UNIQUE (source_system, source_reference)
);
CREATE INDEX charge_receipts_run_idx ON charge_receipts (run_id, created_at);
CREATE INDEX charge_receipts_account_idx ON charge_receipts (billing_account_id, created_at);

-- Degraded billing that needs a human: a paid call that reported no cost.
CREATE TABLE billing_alerts (
    id                 bigserial PRIMARY KEY,
    kind               text NOT NULL,
    billing_account_id text REFERENCES billing_accounts (id) ON DELETE CASCADE,
    receipt_id         text REFERENCES charge_receipts (id) ON DELETE CASCADE,
    message            text NOT NULL,
    details            jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX billing_alerts_created_idx ON billing_alerts (created_at);
