"""The feature service takes every event time the ingest service accepts: a record
stamped by a producer whose clock runs ahead (within ingest's allowance) must not be
refused at delivery, where it would hold its whole outbox batch back until its time
came."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from feature_service.config import Settings
from feature_service.features import FeatureBook
from ingest_service.validation import CLOCK_SKEW


def test_the_default_skew_covers_ingests() -> None:
    assert timedelta(seconds=Settings().clock_skew_seconds) >= CLOCK_SKEW


def test_the_book_allows_an_event_at_the_edge_of_ingests_skew() -> None:
    now = datetime(2026, 5, 1, 12, tzinfo=UTC)
    book = FeatureBook(store=None, clock=lambda: now)  # type: ignore[arg-type]  # no store needed
    assert book.latest_allowed_time() >= now + CLOCK_SKEW
