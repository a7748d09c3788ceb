"""The rules of partner authorizations and the access log, without a database;
and the consent migration that makes earlier idempotency records purgeable."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from alembic import command
from sqlalchemy import select

from consent_service import authorizations as rules
from consent_service.authorizations import AccessEntry, Authorization, AuthorizationState
from consent_service.migrations import MIGRATIONS
from consent_service.store import requests_table
from creditscore.common.v1 import common_pb2
from creditscore.consent.v1 import consent_pb2
from creditscore.runtime import InvalidArgument, NotFound, PermissionDenied, Violations, make_engine, to_timestamp

T0 = datetime(2030, 1, 1, tzinfo=UTC)
DAY = timedelta(days=1)
CREDIT = common_pb2.ACCESS_PURPOSE_CREDIT_APPLICATION


def grant(existing: Authorization | None = None, *, scope: int = rules.SCOPE_THRESHOLD,
          expire: datetime = T0 + DAY, now: datetime = T0) -> Authorization:
    return rules.grant_authorization(existing, subject_id="s", partner_id="p", purpose=CREDIT, scope=scope,
                                     expire_time=expire, now=now)


def test_states_follow_the_stored_times() -> None:
    made = grant()
    assert made.state_at(T0) is AuthorizationState.LIVE
    assert made.state_at(T0 + DAY) is AuthorizationState.EXPIRED
    revoked = rules.revoke_authorization(made, now=T0 + timedelta(hours=1))
    assert revoked.state_at(T0 + timedelta(hours=1)) is AuthorizationState.REVOKED
    assert rules.revoke_authorization(revoked, now=T0 + DAY) == revoked  # the first revocation stands
    with pytest.raises(NotFound):
        rules.revoke_authorization(None, now=T0)


def test_granting_again_keeps_a_live_grant_and_restarts_anything_else() -> None:
    made = grant()
    widened = grant(made, scope=rules.SCOPE_FULL_SCORE, expire=T0 + 5 * DAY, now=T0 + timedelta(hours=2))
    assert (widened.grant_time, widened.scope, widened.expire_time) == (T0, rules.SCOPE_FULL_SCORE, T0 + 5 * DAY)
    revoked = rules.revoke_authorization(made, now=T0 + timedelta(hours=1))
    fresh = grant(revoked, now=T0 + timedelta(hours=2), expire=T0 + 2 * DAY)
    assert fresh.grant_time == T0 + timedelta(hours=2) and fresh.revoke_time is None


def test_a_threshold_answer_needs_a_live_grant_and_a_score_the_full_scope() -> None:
    threshold, full = grant(), grant(scope=rules.SCOPE_FULL_SCORE)
    assert rules.ensure_scope_covers(threshold, rules.ANSWER_THRESHOLD, T0) == threshold
    assert rules.ensure_scope_covers(full, rules.ANSWER_SCORE, T0) == full
    assert rules.ensure_scope_covers(full, rules.ANSWER_THRESHOLD, T0) == full
    for grant_, answer, now in ((threshold, rules.ANSWER_SCORE, T0), (None, rules.ANSWER_THRESHOLD, T0),
                                (full, rules.ANSWER_SCORE, T0 + DAY)):
        with pytest.raises(PermissionDenied) as info:
            rules.ensure_scope_covers(grant_, answer, now)
        assert info.value.reason == "NOT_AUTHORIZED"


def test_expiry_and_scope_of_a_request() -> None:
    v = Violations()
    assert rules.resolve_expire_time(v, None, T0) == T0 + 30 * DAY
    assert rules.check_scope(v, 0) == rules.SCOPE_THRESHOLD
    assert not v
    rules.resolve_expire_time(v, T0, T0)
    rules.resolve_expire_time(v, T0 + 367 * DAY, T0)
    rules.check_scope(v, 7)
    rules.check_transaction_id(v, "")
    rules.check_transaction_id(v, "é")
    rules.check_transaction_id(v, "x" * 129)
    rules.check_access_purpose(v, 99)
    assert [i.field for i in v.items] == ["expire_time", "expire_time", "scope", "transaction_id",
                                          "transaction_id", "transaction_id", "purpose"]


def test_a_transaction_id_names_one_lookup() -> None:
    entry = AccessEntry("a", "s", "p", CREDIT, "tx", rules.SCOPE_THRESHOLD, b"", b"", T0)
    rules.ensure_same_lookup(entry, "s", CREDIT)
    for subject, purpose in (("other", CREDIT), ("s", common_pb2.ACCESS_PURPOSE_RENTAL)):
        with pytest.raises(InvalidArgument) as info:
            rules.ensure_same_lookup(entry, subject, purpose)
        assert info.value.reason == "TRANSACTION_ID_REUSED"


async def test_the_migration_names_the_subject_of_earlier_requests(sqlite_url: str) -> None:
    """Idempotency records written before consent_0002 are found by a purge."""
    engine = make_engine(sqlite_url)
    try:
        def upgrade(sync, revision: str) -> None:
            config = MIGRATIONS.config()
            config.attributes["connection"] = sync
            command.upgrade(config, revision)

        async with engine.begin() as conn:
            await conn.run_sync(upgrade, "consent_0001")
            consent = consent_pb2.Consent(subject_id="s-9", grant_time=to_timestamp(T0))
            for request_id, method, response in (
                ("r1", "EnrollSubject",
                 consent_pb2.EnrollSubjectResponse(subject=consent_pb2.Subject(subject_id="s-1"))),
                ("r2", "GrantConsent", consent_pb2.GrantConsentResponse(consent=consent)),
                ("r3", "WithdrawConsent", consent_pb2.WithdrawConsentResponse(consent=consent)),
            ):
                await conn.exec_driver_sql(
                    "INSERT INTO requests (request_id, method, request_sha256, response, create_time) "
                    "VALUES (?, ?, 'x', ?, '2030-01-01 00:00:00')",
                    (request_id, method, response.SerializeToString()),
                )
        async with engine.begin() as conn:
            await conn.run_sync(upgrade, "head")
        async with engine.connect() as conn:
            rows = (await conn.execute(select(requests_table.c.request_id, requests_table.c.subject_id)
                                       .order_by(requests_table.c.request_id))).all()
        assert [tuple(r) for r in rows] == [("r1", "s-1"), ("r2", "s-9"), ("r3", "s-9")]
    finally:
        await engine.dispose()
