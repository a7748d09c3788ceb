"""Shared fixtures: databases (SQLite always; PostgreSQL when TEST_POSTGRES_URL is set)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.pg import POSTGRES_URL, create_pg_database, drop_pg_database


@pytest.fixture
async def postgres_url() -> AsyncIterator[str]:
    """A fresh, empty PostgreSQL database, dropped afterwards. Skipped (never
    silently passed) where TEST_POSTGRES_URL is not set; .ci/run sets it."""
    if not POSTGRES_URL:
        pytest.skip("TEST_POSTGRES_URL not set (CI sets it; see .ci/run)")
    url = await create_pg_database()
    try:
        yield url
    finally:
        await drop_pg_database(url)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def database_url(request: pytest.FixtureRequest, tmp_path) -> AsyncIterator[str]:
    """Each store test runs on a fresh SQLite file and on a fresh PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/test.db"
        return
    if not POSTGRES_URL:
        pytest.skip("TEST_POSTGRES_URL not set (CI sets it; see .ci/run)")
    url = await create_pg_database()
    try:
        yield url
    finally:
        await drop_pg_database(url)


@pytest.fixture
def sqlite_url(tmp_path) -> str:
    return f"sqlite:///{tmp_path}/test.db"
