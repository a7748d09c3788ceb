"""Ingest settings: defaults of the suite's conventions, and the environment over them."""

from __future__ import annotations

from creditscore.runtime import from_env
from ingest_service.config import Settings


def test_defaults_follow_the_suite_conventions():
    s = from_env(Settings, {})
    assert (s.server.port, s.database_url) == (50052, "sqlite:///var/ingest.db")
    assert (s.consent_service_addr, s.feature_service_addr) == ("localhost:50051", "localhost:50053")
    assert (s.outbox_batch, s.outbox_poll_seconds, s.consent_timeout_seconds) == (500, 0.5, 5.0)
    assert (s.outbox_lease_margin_seconds, s.auto_migrate, s.outbox_dispatch) == (5.0, True, True)


def test_the_environment_sets_every_knob():
    s = from_env(Settings, {
        "GRPC_PORT": "6000", "DATABASE_URL": "postgresql://u@db/ingest",
        "CONSENT_SERVICE_ADDR": "consent:50051", "FEATURE_SERVICE_ADDR": "feature:50053",
        "OUTBOX_BATCH": "200", "OUTBOX_POLL_SECONDS": "2", "OUTBOX_DELIVERY_TIMEOUT_SECONDS": "7",
        "CONSENT_TIMEOUT_SECONDS": "1.5", "OUTBOX_LEASE_MARGIN_SECONDS": "0.5", "AUTO_MIGRATE": "false",
        "OUTBOX_DISPATCH": "no",
    })
    assert (s.server.port, s.database_url) == (6000, "postgresql://u@db/ingest")
    assert (s.consent_service_addr, s.feature_service_addr) == ("consent:50051", "feature:50053")
    assert (s.outbox_batch, s.outbox_poll_seconds, s.outbox_delivery_timeout_seconds) == (200, 2.0, 7.0)
    assert s.consent_timeout_seconds == 1.5
    assert (s.outbox_lease_margin_seconds, s.auto_migrate, s.outbox_dispatch) == (0.5, False, False)
