-- Tenant purges (issue 8): one row per tenant whose data was or is being deleted, and the fence that
-- refuses the tenant's writes while it is in progress (storage/purge.py, services/purge.py).

-- The job: its status survives a crash, so the next call or the sweeper finishes it; the counts
-- add up over every pass. The row is the deletion record: it names the tenant and nothing else of it.
CREATE TABLE tenant_purges (
    tenant text PRIMARY KEY,
    store_label text NOT NULL,  -- the tenant's hidden first store-namespace label (storage/store/tenant.py)
    status text NOT NULL,  -- in_progress | done
    counts jsonb NOT NULL DEFAULT '{}',
    passes integer NOT NULL DEFAULT 0,
    requested_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz
);
CREATE INDEX tenant_purges_active_idx ON tenant_purges (store_label) WHERE status = 'in_progress';

-- The fence: while a tenant's purge is in progress, no new row of it may appear, whoever writes it
-- (a run still executing on any worker, a cron firing, the tenant's own API calls). Each check is
-- one probe of the small partial index above and costs nothing when no purge is in progress.
CREATE FUNCTION cogni_purge_refuse(tenant text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the data of tenant % is being purged; its writes are refused until the purge is done', tenant
        USING ERRCODE = 'P0C01';
END;
$$;

-- Tables with an owner column (threads, runs, assistants, crons): new rows only.
CREATE FUNCTION cogni_purge_fence_owner() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.owner IS NOT NULL
       AND EXISTS (SELECT 1 FROM tenant_purges WHERE tenant = NEW.owner AND status = 'in_progress') THEN
        PERFORM cogni_purge_refuse(NEW.owner);
    END IF;
    RETURN NEW;
END;
$$;
CREATE TRIGGER threads_purge_fence BEFORE INSERT ON threads
    FOR EACH ROW EXECUTE FUNCTION cogni_purge_fence_owner();
CREATE TRIGGER runs_purge_fence BEFORE INSERT ON runs
    FOR EACH ROW EXECUTE FUNCTION cogni_purge_fence_owner();
CREATE TRIGGER assistants_purge_fence BEFORE INSERT ON assistants
    FOR EACH ROW EXECUTE FUNCTION cogni_purge_fence_owner();
CREATE TRIGGER crons_purge_fence BEFORE INSERT ON crons
    FOR EACH ROW EXECUTE FUNCTION cogni_purge_fence_owner();

-- The checkpointer's tables (thread_id is the thread's id as text): inserts and updates of a thread
-- whose owner is being purged. Installed by storage/purge.py once the checkpointer created them.
CREATE FUNCTION cogni_purge_fence_checkpoint() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    tid uuid;
    who text;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM tenant_purges WHERE status = 'in_progress') THEN
        RETURN NEW;
    END IF;
    BEGIN
        tid := NEW.thread_id::uuid;
    EXCEPTION WHEN invalid_text_representation THEN
        RETURN NEW;  -- not a thread of this server's API
    END;
    SELECT t.owner INTO who FROM threads t
        JOIN tenant_purges p ON p.tenant = t.owner AND p.status = 'in_progress'
        WHERE t.thread_id = tid;
    IF who IS NOT NULL THEN
        PERFORM cogni_purge_refuse(who);
    END IF;
    RETURN NEW;
END;
$$;

-- The store (prefix is the namespace joined with '.'; its first label is the tenant's): inserts and
-- updates under the label of a tenant being purged. Installed once the store created its table.
CREATE FUNCTION cogni_purge_fence_store() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    who text;
BEGIN
    SELECT tenant INTO who FROM tenant_purges
        WHERE status = 'in_progress' AND store_label = split_part(NEW.prefix, '.', 1);
    IF who IS NOT NULL THEN
        PERFORM cogni_purge_refuse(who);
    END IF;
    RETURN NEW;
END;
$$;
