-- Assistants, threads and runs. Every row has an owner (the tenant); system assistants have none
-- and are visible to every tenant.
CREATE TABLE assistants (
    assistant_id uuid PRIMARY KEY,
    owner text,
    graph_id text NOT NULL,
    name text NOT NULL,
    description text,
    config jsonb NOT NULL DEFAULT '{}',
    context jsonb NOT NULL DEFAULT '{}',
    metadata jsonb NOT NULL DEFAULT '{}',
    version integer NOT NULL DEFAULT 1,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX assistants_owner_idx ON assistants (owner, created_at DESC);
CREATE INDEX assistants_graph_idx ON assistants (graph_id);

CREATE TABLE assistant_versions (
    assistant_id uuid NOT NULL REFERENCES assistants (assistant_id) ON DELETE CASCADE,
    version integer NOT NULL,
    graph_id text NOT NULL,
    name text NOT NULL,
    description text,
    config jsonb NOT NULL DEFAULT '{}',
    context jsonb NOT NULL DEFAULT '{}',
    metadata jsonb NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (assistant_id, version)
);

CREATE TABLE threads (
    thread_id uuid PRIMARY KEY,
    owner text NOT NULL,
    metadata jsonb NOT NULL DEFAULT '{}',
    config jsonb NOT NULL DEFAULT '{}',
    status text NOT NULL DEFAULT 'idle',
    "values" jsonb,
    interrupts jsonb NOT NULL DEFAULT '{}',
    error jsonb,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    state_updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX threads_owner_idx ON threads (owner, created_at DESC);
CREATE INDEX threads_metadata_idx ON threads USING gin (metadata jsonb_path_ops);

CREATE TABLE runs (
    run_id uuid PRIMARY KEY,
    thread_id uuid NOT NULL REFERENCES threads (thread_id) ON DELETE CASCADE,
    assistant_id uuid NOT NULL,
    graph_id text NOT NULL,
    owner text NOT NULL,
    status text NOT NULL,
    metadata jsonb NOT NULL DEFAULT '{}',
    kwargs jsonb NOT NULL DEFAULT '{}',
    multitask_strategy text NOT NULL DEFAULT 'enqueue',
    attempt integer NOT NULL DEFAULT 1,
    worker_id text,
    lease_expires_at timestamptz,
    run_after timestamptz NOT NULL DEFAULT now(),
    cancel_reason text,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX runs_thread_idx ON runs (thread_id, created_at DESC);
CREATE INDEX runs_pending_idx ON runs (run_after, created_at) WHERE status = 'pending';
CREATE INDEX runs_lease_idx ON runs (lease_expires_at) WHERE status = 'running';
-- At most one run executes per thread at a time, whatever the number of workers.
CREATE UNIQUE INDEX runs_one_running_per_thread ON runs (thread_id) WHERE status = 'running';
