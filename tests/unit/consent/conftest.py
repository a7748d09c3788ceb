"""Fixtures of the consent store tests: an engine on each database (SQLite, and
PostgreSQL where TEST_POSTGRES_URL is set: ``database_url``), and a store on it
with its tables made."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from consent_service.store import ConsentStore
from creditscore.runtime import make_engine


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = make_engine(database_url)
    try:
        yield engine
    finally:
        await engine.dispose()


@pytest.fixture
async def store(engine: AsyncEngine) -> ConsentStore:
    """A store with the default sweep delay and token life (``store.SWEEP_DELAY``,
    ``store.TOKEN_LIFE``)."""
    return await ConsentStore.open(engine)
