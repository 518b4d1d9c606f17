-- Crons, the webhook outbox and thread TTLs (issue 7).

-- A cron belongs to a tenant like a thread. A thread cron goes with its thread; every cron goes
-- with its assistant (system assistants are rows too, so a graph removed from langgraph.json keeps
-- its crons until the assistant row is deleted).
CREATE TABLE crons (
    cron_id uuid PRIMARY KEY,
    owner text NOT NULL,
    assistant_id uuid NOT NULL REFERENCES assistants (assistant_id) ON DELETE CASCADE,
    thread_id uuid REFERENCES threads (thread_id) ON DELETE CASCADE,
    schedule text NOT NULL,
    timezone text,
    payload jsonb NOT NULL DEFAULT '{}',
    metadata jsonb NOT NULL DEFAULT '{}',
    next_run_date timestamptz,
    end_time timestamptz,
    enabled boolean NOT NULL DEFAULT true,
    on_run_completed text,
    user_id text,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
-- The scheduler's one query per poll: due, enabled crons in tick order.
CREATE INDEX crons_due_idx ON crons (next_run_date) WHERE enabled;
CREATE INDEX crons_owner_idx ON crons (owner, created_at DESC);
CREATE INDEX crons_thread_idx ON crons (thread_id) WHERE thread_id IS NOT NULL;
CREATE INDEX crons_assistant_idx ON crons (assistant_id);
CREATE INDEX crons_metadata_idx ON crons USING gin (metadata jsonb_path_ops);

-- One row per webhook to deliver: written by the trigger below in the same statement that moves
-- a run to its end (or deletes it unfinished), so no terminal path can lose it.
CREATE TABLE webhook_outbox (
    delivery_id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    run_id uuid NOT NULL,
    thread_id uuid NOT NULL,
    owner text NOT NULL,
    url text NOT NULL,
    payload jsonb NOT NULL,
    status text NOT NULL DEFAULT 'pending',  -- pending | delivered | failed | refused
    attempts integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    lease_owner text,
    lease_expires_at timestamptz,
    last_error text,
    response_status integer,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    delivered_at timestamptz
);
CREATE INDEX webhook_outbox_due_idx ON webhook_outbox (next_attempt_at) WHERE status = 'pending';
CREATE INDEX webhook_outbox_run_idx ON webhook_outbox (run_id);

-- The webhook body: the run as the clients see it, plus when it started and ended, the thread's
-- values and the error (the reference server's shape). Built from the row and the thread as they
-- are at the end of the statement that finished the run.
CREATE FUNCTION cogni_webhook_enqueue() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    r runs;
    final_status text;
    t_values jsonb;
    t_error jsonb;
BEGIN
    IF TG_OP = 'DELETE' THEN
        r := OLD;
        final_status := 'interrupted';
    ELSE
        r := NEW;
        final_status := NEW.status;
    END IF;
    SELECT t."values", t.error INTO t_values, t_error FROM threads t WHERE t.thread_id = r.thread_id;
    INSERT INTO webhook_outbox (run_id, thread_id, owner, url, payload)
    VALUES (
        r.run_id, r.thread_id, r.owner, r.kwargs->>'webhook',
        jsonb_build_object(
            'run_id', r.run_id, 'thread_id', r.thread_id, 'assistant_id', r.assistant_id,
            'status', final_status, 'metadata', r.metadata, 'kwargs', r.kwargs,
            'multitask_strategy', r.multitask_strategy, 'attempt', r.attempt,
            'created_at', r.created_at, 'updated_at', now(),
            'run_started_at', r.started_at, 'run_ended_at', now(),
            'cancel_reason', coalesce(r.cancel_reason, CASE WHEN TG_OP = 'DELETE' THEN 'deleted' END),
            'values', CASE WHEN TG_OP = 'DELETE' THEN NULL ELSE t_values END
        ) || CASE WHEN final_status IN ('error', 'timeout') AND t_error IS NOT NULL
                  THEN jsonb_build_object('error', t_error) ELSE '{}'::jsonb END
    );
    RETURN NULL;
END;
$$;

-- When a run was first picked up (the webhook's run_started_at): set on the transition to running.
ALTER TABLE runs ADD COLUMN started_at timestamptz;
CREATE FUNCTION cogni_run_started() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.started_at := coalesce(NEW.started_at, now());
    RETURN NEW;
END;
$$;
CREATE TRIGGER runs_started_at BEFORE INSERT OR UPDATE OF status ON runs
    FOR EACH ROW WHEN (NEW.status = 'running') EXECUTE FUNCTION cogni_run_started();

CREATE TRIGGER runs_webhook_on_end AFTER UPDATE OF status ON runs
    FOR EACH ROW
    WHEN (OLD.status IN ('pending', 'running') AND NEW.status NOT IN ('pending', 'running')
          AND NEW.kwargs->>'webhook' IS NOT NULL)
    EXECUTE FUNCTION cogni_webhook_enqueue();
CREATE TRIGGER runs_webhook_on_delete AFTER DELETE ON runs
    FOR EACH ROW
    WHEN (OLD.status IN ('pending', 'running') AND OLD.kwargs->>'webhook' IS NOT NULL)
    EXECUTE FUNCTION cogni_webhook_enqueue();

-- Thread TTL: minutes of inactivity after which the sweeper applies the strategy.
ALTER TABLE threads ADD COLUMN ttl_minutes double precision;
ALTER TABLE threads ADD COLUMN ttl_strategy text;
ALTER TABLE threads ADD COLUMN expires_at timestamptz;
CREATE INDEX threads_expires_idx ON threads (expires_at) WHERE expires_at IS NOT NULL;
