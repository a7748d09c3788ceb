"""Shared fixtures: databases (SQLite always; PostgreSQL when TEST_POSTGRES_URL is set)."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator

import pytest
from sqlalchemy.engine import make_url

POSTGRES_URL = os.environ.get("TEST_POSTGRES_URL", "")


async def _create_pg_database() -> str:
    import asyncpg

    admin = make_url(POSTGRES_URL)
    name = f"cs_test_{uuid.uuid4().hex[:12]}"
    conn = await asyncpg.connect(
        host=admin.host, port=admin.port or 5432, user=admin.username or "postgres",
        password=admin.password, database=admin.database or "postgres",
    )
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return admin.set(database=name).render_as_string(hide_password=False)


async def _drop_pg_database(url: str) -> None:
    import asyncpg

    admin = make_url(POSTGRES_URL)
    name = make_url(url).database
    conn = await asyncpg.connect(
        host=admin.host, port=admin.port or 5432, user=admin.username or "postgres",
        password=admin.password, database=admin.database or "postgres",
    )
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


@pytest.fixture
async def postgres_url() -> AsyncIterator[str]:
    """A fresh, empty PostgreSQL database, dropped afterwards. Skipped (never
    silently passed) where TEST_POSTGRES_URL is not set; .ci/run sets it."""
    if not POSTGRES_URL:
        pytest.skip("TEST_POSTGRES_URL not set (CI sets it; see .ci/run)")
    url = await _create_pg_database()
    try:
        yield url
    finally:
        await _drop_pg_database(url)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def database_url(request: pytest.FixtureRequest, tmp_path) -> AsyncIterator[str]:
    """Each store test runs on a fresh SQLite file and on a fresh PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/test.db"
        return
    if not POSTGRES_URL:
        pytest.skip("TEST_POSTGRES_URL not set (CI sets it; see .ci/run)")
    url = await _create_pg_database()
    try:
        yield url
    finally:
        await _drop_pg_database(url)


@pytest.fixture
def sqlite_url(tmp_path) -> str:
    return f"sqlite:///{tmp_path}/test.db"
