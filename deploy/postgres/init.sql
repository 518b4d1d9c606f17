-- Runs once when the compose Postgres volume is first created.
-- One server, two databases: the Agent Server's (threads, runs, checkpoints) and the app's
-- (billing ledger, receipts, and the LiteLLM spend-log sink table the reconciler reads).
CREATE DATABASE cogni_server;
CREATE DATABASE cogni_app;
