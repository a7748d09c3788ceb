"""What the feature service's store tests share."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from creditscore.runtime import make_engine
from feature_service.store import FeatureStore


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[FeatureStore]:
    """A fresh feature store, on each database of ``database_url``."""
    engine = make_engine(database_url)
    store = FeatureStore(engine)
    await store.create_schema()
    try:
        yield store
    finally:
        await store.close()
        await engine.dispose()
