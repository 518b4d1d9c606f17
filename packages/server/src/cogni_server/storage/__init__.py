"""Postgres storage: the connection pool, versioned migrations and the repositories holding all SQL."""
