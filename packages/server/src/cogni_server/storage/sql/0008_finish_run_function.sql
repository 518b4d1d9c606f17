-- Issue 9: the end of a run in one round trip. The finish locks the run's thread row, then marks the run
-- done and summarises the thread (storage/run_end.py). It was BEGIN, the lock, the update and COMMIT from
-- the client (1.2 ms a run here); one call of this function is 0.5 ms and keeps what the two statements
-- gave: the thread's row is locked before the run's (the lock order of storage/runs.py), and the update
-- reads with a snapshot taken after the lock, so it sees a run that a creator holding the lock just
-- committed (a VOLATILE function takes a fresh snapshot for each statement; one statement would read with
-- the snapshot it took before waiting, miss that run, call the thread idle and not wake a worker for it).
-- Returns the thread's new status, or NULL when the run was not ours to finish (lease lost, ended already).
CREATE OR REPLACE FUNCTION cogni_finish_run(
    p_run uuid, p_worker text, p_run_status text, p_status text,
    p_values jsonb, p_interrupts jsonb, p_error jsonb, p_update_state boolean
) RETURNS text LANGUAGE plpgsql VOLATILE AS $$
#variable_conflict error
DECLARE
    new_status text;
BEGIN
    PERFORM 1 FROM threads t WHERE t.thread_id IN (SELECT r.thread_id FROM runs r WHERE r.run_id = p_run)
        FOR NO KEY UPDATE OF t;
    WITH r AS (
        UPDATE runs SET status = p_run_status, worker_id = NULL, lease_expires_at = NULL, updated_at = now()
        WHERE run_id = p_run AND worker_id = p_worker AND status = 'running'
        RETURNING thread_id
    )
    UPDATE threads t SET
        status = CASE WHEN EXISTS (SELECT 1 FROM runs x WHERE x.thread_id = t.thread_id AND x.run_id <> p_run
                                   AND x.status IN ('pending', 'running')) THEN 'busy' ELSE p_status END,
        "values" = CASE WHEN p_update_state THEN p_values ELSE t."values" END,
        interrupts = CASE WHEN p_update_state THEN p_interrupts ELSE t.interrupts END,
        error = p_error,
        updated_at = now(),
        state_updated_at = CASE WHEN p_update_state THEN now() ELSE t.state_updated_at END
    FROM r WHERE t.thread_id = r.thread_id
    RETURNING t.status INTO new_status;
    RETURN new_status;
END
$$;
