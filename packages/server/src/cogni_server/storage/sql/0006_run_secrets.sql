-- Issue 8: a run's per-account LiteLLM key, kept only while the run needs it (storage/run_secrets.py).
-- Encrypted with COGNI_SECRETS_KEY (Fernet) before it is written: the table holds ciphertext only. It goes with
-- its run (cascade) and, by the trigger below, the moment the run reaches a final status, whoever ends it
-- (the worker, the sweeper giving up, a cancellation). A retried run (back to pending) keeps it.
CREATE TABLE run_secrets (
    run_id uuid PRIMARY KEY REFERENCES runs (run_id) ON DELETE CASCADE,
    llm_key bytea NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE FUNCTION cogni_drop_run_secret() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM run_secrets WHERE run_id = NEW.run_id;
    RETURN NULL;
END;
$$;

-- Only runs that were given a key (their settings say so) pay for the delete.
CREATE TRIGGER runs_drop_secret_at_end AFTER UPDATE OF status ON runs FOR EACH ROW
    WHEN (NEW.status NOT IN ('pending', 'running') AND NEW.kwargs ? 'llm_key')
    EXECUTE FUNCTION cogni_drop_run_secret();
