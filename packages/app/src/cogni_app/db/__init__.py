"""The app database: a psycopg 3 async pool and versioned SQL migrations."""

from cogni_app.db.checkpoints import postgres_checkpointer, setup_checkpoints
from cogni_app.db.migrate import applied_versions, migrate
from cogni_app.db.pool import AppDatabase

__all__ = ["AppDatabase", "applied_versions", "migrate", "postgres_checkpointer", "setup_checkpoints"]
