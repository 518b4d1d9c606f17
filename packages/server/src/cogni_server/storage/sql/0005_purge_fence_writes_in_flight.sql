-- The purge fence closes its race with writes in flight (issue 8, concurrency): a write that passed the
-- fence before a purge started could commit after the purge had looked (a new thread and its run left
-- behind a purge answered `done`; a run started on an idle thread deleted while its worker ran it).
--
-- Each fenced write now takes a shared transaction-scoped advisory lock on its tenant (owner tables) or
-- on its store label (the store) before it looks at `tenant_purges`; a purge starts by taking the same
-- locks exclusively in the transaction that sets its job `in_progress` (storage/purge.py, START_JOB).
-- So the purge waits for the tenant's writes in flight to commit (and then sees them), and every later
-- write waits for the purge's start to commit (and then is refused). Class 1886545783 = 0x70726777
-- ("prgw"); the key is hashtext(tenant) or hashtext(store label). Writes of one tenant never wait for
-- each other (shared locks); a hash collision between two tenants only makes one wait for the other's
-- purge to start.

CREATE OR REPLACE FUNCTION cogni_purge_fence_owner() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.owner IS NOT NULL THEN
        PERFORM pg_advisory_xact_lock_shared(1886545783, hashtext(NEW.owner));
        -- a volatile function's query takes a fresh snapshot: it sees a purge started while we waited
        IF EXISTS (SELECT 1 FROM tenant_purges WHERE tenant = NEW.owner AND status = 'in_progress') THEN
            PERFORM cogni_purge_refuse(NEW.owner);
        END IF;
    END IF;
    RETURN NEW;
END;
$$;

CREATE OR REPLACE FUNCTION cogni_purge_fence_store() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    label text := split_part(NEW.prefix, '.', 1);
    who text;
BEGIN
    PERFORM pg_advisory_xact_lock_shared(1886545783, hashtext(label));
    SELECT tenant INTO who FROM tenant_purges WHERE status = 'in_progress' AND store_label = label;
    IF who IS NOT NULL THEN
        PERFORM cogni_purge_refuse(who);
    END IF;
    RETURN NEW;
END;
$$;
