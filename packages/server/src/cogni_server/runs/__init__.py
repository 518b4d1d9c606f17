"""Run execution: the worker pool that claims runs from Postgres and the executor that streams a graph."""
