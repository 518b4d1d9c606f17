"""Fixtures shared by the app's reconciler tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import psycopg
import pytest

from cogni_app.db import AppDatabase
from cogni_litellm_sink.schema import DDL
from testsupport import fresh_database
from testsupport.app_db import open_migrated


@pytest.fixture
async def sink_and_app_db() -> AsyncIterator[tuple[str, AppDatabase]]:
    """A fresh database holding both the spend-log sink table and the migrated app schema."""
    with fresh_database("cogni_app_reconcile") as url:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(DDL.encode())
        async with open_migrated(url) as db:
            yield url, db
