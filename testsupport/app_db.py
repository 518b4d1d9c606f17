"""A migrated app database with an open AppDatabase pool, for the app's tests."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from cogni_app.db import AppDatabase, migrate


@asynccontextmanager
async def open_migrated(url: str, *, max_size: int = 10) -> AsyncIterator[AppDatabase]:
    """Migrate the database at `url` and yield an open pool on it; closes the pool afterwards."""
    await migrate(url)
    db = AppDatabase(url, min_size=1, max_size=max_size)
    await db.open()
    try:
        yield db
    finally:
        await db.close()
