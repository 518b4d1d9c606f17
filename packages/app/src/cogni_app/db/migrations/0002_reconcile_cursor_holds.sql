-- Issue 12 (app): the reconciler's durable cursor over the spend log, late-cost corrections, credit holds.

-- One row per spend-log source: the last position (time, call id) every call up to which has been
-- reconciled. The sweep reads from here, however old, so an outage longer than any window loses nothing.
CREATE TABLE reconcile_cursors (
    source      text PRIMARY KEY,
    position_at timestamptz NOT NULL,
    position_id text NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- A call first charged without a cost (under_billed) whose real cost arrives later is charged once more,
-- as a correction: one correction per receipt, enforced here (two reconcilers side by side race on it).
CREATE TABLE charge_corrections (
    id                 text PRIMARY KEY DEFAULT gen_random_uuid()::text,
    receipt_id         text NOT NULL UNIQUE REFERENCES charge_receipts (id) ON DELETE CASCADE,
    billing_account_id text NOT NULL REFERENCES billing_accounts (id) ON DELETE CASCADE,
    charged_credits    bigint NOT NULL CHECK (charged_credits >= 0),
    provider_cost_usd  numeric NOT NULL,
    response_cost_usd  numeric NOT NULL,
    provenance         text NOT NULL,
    created_at         timestamptz NOT NULL DEFAULT now()
);
-- Its ledger row has reason 'charge_correction' and reference = the correction's id.

-- Credits held for a run's estimate between preflight and the run's end. A hold is taken only if
-- balance - open holds covers it (under the account's row lock), and released when the run ends;
-- expires_at bounds a hold whose run was killed before it could release it.
CREATE TABLE credit_holds (
    id                 text PRIMARY KEY DEFAULT gen_random_uuid()::text,
    billing_account_id text NOT NULL REFERENCES billing_accounts (id) ON DELETE CASCADE,
    run_id             text NOT NULL,
    state_key          text,
    amount             bigint NOT NULL CHECK (amount >= 0),
    created_at         timestamptz NOT NULL DEFAULT now(),
    expires_at         timestamptz NOT NULL,
    released_at        timestamptz
);
CREATE INDEX credit_holds_open_idx ON credit_holds (billing_account_id, expires_at) WHERE released_at IS NULL;
-- The runs of a conversation, newest first: the estimate reads the thread's context size from their receipts.
CREATE INDEX credit_holds_thread_idx ON credit_holds (billing_account_id, state_key, created_at);
