-- The thread-streaming protocol numbers every event of a thread (``seq``). The log itself lives in the
-- broker (Redis or memory); this column is the durable ceiling of the numbers handed out: every seq
-- ever assigned on the thread is <= stream_seq, so a log rebuilt after Redis (or every instance) lost
-- it continues above it and never reuses a number (see streaming/thread_log.py).
ALTER TABLE threads ADD COLUMN stream_seq bigint NOT NULL DEFAULT 0;
