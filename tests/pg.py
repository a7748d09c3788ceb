"""PostgreSQL test databases: a fresh database per test, dropped afterwards."""

from __future__ import annotations

import os
import uuid

from sqlalchemy.engine import make_url

__all__ = ["POSTGRES_URL", "create_pg_database", "drop_pg_database"]

POSTGRES_URL = os.environ.get("TEST_POSTGRES_URL", "")


async def create_pg_database() -> str:
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


async def drop_pg_database(url: str) -> None:
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
