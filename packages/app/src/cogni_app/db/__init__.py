"""The app database: a psycopg 3 async pool and versioned SQL migrations."""

from cogni_app.db.checkpoints import postgres_checkpointer, setup_checkpoints
from cogni_app.db.migrate import applied_versions, migrate
from cogni_app.db.pool import TRANSIENT_ERRORS, AppDatabase, is_transient

__all__ = [
    "TRANSIENT_ERRORS",
    "AppDatabase",
    "applied_versions",
    "is_transient",
    "migrate",
    "postgres_checkpointer",
    "setup_checkpoints",
]
