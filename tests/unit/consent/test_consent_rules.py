"""The consent rules without gRPC or a database: states, transitions, validation."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from consent_service import consents as rules
from consent_service.consents import Consent, ConsentState, RequestKey
from creditscore.common.v1 import common_pb2
from creditscore.consent.v1 import consent_pb2
from creditscore.runtime import InvalidArgument, NotFound, Violations, encode_page_token

T0 = datetime(2030, 1, 1, tzinfo=UTC)
HOUR = timedelta(hours=1)
COMMERCE = common_pb2.DATA_SOURCE_COMMERCE
PAYMENTS = common_pb2.DATA_SOURCE_PAYMENTS
SCORING = common_pb2.PURPOSE_CREDIT_SCORING


def consent(**overrides: object) -> Consent:
    fields: dict[str, object] = dict(
        subject_id="s1", source=COMMERCE, purpose=SCORING, grant_time=T0
    )
    fields.update(overrides)
    return Consent(**fields)  # type: ignore[arg-type]


def fields_of(check: object, *args: object, **kwargs: object) -> list[str]:
    v = Violations()
    check(v, *args, **kwargs)  # type: ignore[operator]
    return [item.field for item in v.items]


# --- states ------------------------------------------------------------------


def test_states_match_the_contract_numbers() -> None:
    for state in ConsentState:
        assert consent_pb2.ConsentState.Value(f"CONSENT_STATE_{state.name}") == state.value


def test_state_is_computed_at_read_time() -> None:
    c = consent(expire_time=T0 + HOUR)
    assert c.state_at(T0) is ConsentState.GRANTED
    assert c.state_at(T0 + HOUR - timedelta(microseconds=1)) is ConsentState.GRANTED
    # At the expiry instant the consent no longer holds.
    assert c.state_at(T0 + HOUR) is ConsentState.EXPIRED
    assert not c.is_live(T0 + 2 * HOUR)
    assert consent().state_at(T0 + timedelta(days=10_000)) is ConsentState.GRANTED


def test_withdrawal_wins_over_expiry() -> None:
    c = consent(expire_time=T0 + HOUR, withdraw_time=T0 + timedelta(minutes=5))
    assert c.state_at(T0 + 2 * HOUR) is ConsentState.WITHDRAWN
    assert not c.is_live(T0 + timedelta(minutes=10))


# --- transitions -------------------------------------------------------------


def grant(existing: Consent | None, now: datetime, expire_time: datetime | None = None) -> Consent:
    return rules.grant(
        existing, subject_id="s1", source=COMMERCE, purpose=SCORING, expire_time=expire_time, now=now
    )


def test_first_grant_starts_at_now() -> None:
    assert grant(None, T0, T0 + HOUR) == consent(expire_time=T0 + HOUR)


def test_regrant_of_live_grant_keeps_grant_time_and_replaces_expiry() -> None:
    live = grant(None, T0, T0 + HOUR)
    later = T0 + timedelta(minutes=30)
    assert grant(live, later, T0 + 5 * HOUR) == consent(expire_time=T0 + 5 * HOUR)
    # No expiry given: the grant no longer expires.
    assert grant(live, later) == consent()


def test_regrant_after_withdrawal_starts_a_new_grant() -> None:
    withdrawn = consent(withdraw_time=T0 + HOUR)
    again = grant(withdrawn, T0 + 2 * HOUR)
    assert again == consent(grant_time=T0 + 2 * HOUR)
    assert again.withdraw_time is None and again.state_at(T0 + 2 * HOUR) is ConsentState.GRANTED


def test_regrant_after_expiry_starts_a_new_grant() -> None:
    expired = consent(expire_time=T0 + HOUR)
    assert grant(expired, T0 + 2 * HOUR) == consent(grant_time=T0 + 2 * HOUR)


def test_grant_rejects_an_expiry_not_in_the_future() -> None:
    with pytest.raises(InvalidArgument) as info:
        grant(None, T0, T0)
    assert [v.field for v in info.value.violations] == ["expire_time"]


def test_withdraw_transitions() -> None:
    with pytest.raises(NotFound) as info:
        rules.withdraw(None, now=T0)
    assert info.value.reason == "CONSENT_NOT_FOUND"

    withdrawn = rules.withdraw(consent(), now=T0 + HOUR)
    assert withdrawn == consent(withdraw_time=T0 + HOUR)
    # Withdrawing again changes nothing: the first withdrawal time stands.
    assert rules.withdraw(withdrawn, now=T0 + 2 * HOUR) is withdrawn
    # An expired consent can still be withdrawn explicitly.
    expired = consent(expire_time=T0 + HOUR)
    assert rules.withdraw(expired, now=T0 + 3 * HOUR).state_at(T0 + 3 * HOUR) is ConsentState.WITHDRAWN


def test_decide_answers_each_check_in_order() -> None:
    held = [
        consent(subject_id="a", source=COMMERCE),
        consent(subject_id="a", source=PAYMENTS, withdraw_time=T0 + HOUR),
        consent(subject_id="b", source=COMMERCE, expire_time=T0 + HOUR),
    ]
    checks = [("a", COMMERCE), ("a", PAYMENTS), ("b", COMMERCE), ("ghost", COMMERCE), ("a", COMMERCE)]
    assert rules.decide(checks, held, T0 + 2 * HOUR) == [True, False, False, False, True]
    assert rules.decide(checks, held, T0 + timedelta(minutes=1))[2] is True


# --- ids and idempotency -----------------------------------------------------


def test_generated_subject_ids_are_valid_and_distinct() -> None:
    ids = {rules.new_subject_id() for _ in range(200)}
    assert len(ids) == 200
    for subject_id in ids:
        assert re.fullmatch(r"subj_[0-9a-f]{24}", subject_id)
        assert fields_of(rules.check_subject_id, subject_id) == []


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("a", True),
        ("Subj_1-x", True),
        ("x" * 64, True),
        ("x" * 65, False),
        ("has space", False),
        ("dot.ted", False),
        ("trailing\n", False),
        ("ünïcode", False),
        ("", False),
    ],
)
def test_subject_id_format(value: str, ok: bool) -> None:
    assert fields_of(rules.check_subject_id, value) == ([] if ok else ["subject_id"])


@given(st.text(alphabet="abcXYZ019_-", min_size=1, max_size=64))
def test_any_id_of_the_allowed_alphabet_is_valid(value: str) -> None:
    assert fields_of(rules.check_subject_id, value) == []


@given(st.text(min_size=1, max_size=64).filter(lambda s: re.search(r"[^A-Za-z0-9_-]", s) is not None))
def test_any_id_with_another_character_is_invalid(value: str) -> None:
    assert fields_of(rules.check_subject_id, value) == ["subject_id"]


def test_optional_subject_id_may_be_empty() -> None:
    assert fields_of(rules.check_subject_id, "", required=False) == []
    assert fields_of(rules.check_subject_id, "bad id", required=False) == ["subject_id"]


def test_request_id_is_required_and_bounded() -> None:
    assert fields_of(rules.check_request_id, "") == ["request_id"]
    assert fields_of(rules.check_request_id, "r" * 128) == []
    assert fields_of(rules.check_request_id, "r" * 129) == ["request_id"]
    # A NUL or another control character (PostgreSQL cannot store a NUL: was INTERNAL).
    for bad in ("a\x00b", "\x00", "r\n", "\x7f"):
        assert fields_of(rules.check_request_id, bad) == ["request_id"]
    assert fields_of(rules.check_request_id, "demo-enroll sim-000001 é") == []


def test_enums_must_be_known_and_specified() -> None:
    assert fields_of(rules.check_source, COMMERCE) == []
    assert fields_of(rules.check_source, common_pb2.DATA_SOURCE_OUTCOMES) == []
    assert fields_of(rules.check_source, 0) == ["source"]
    assert fields_of(rules.check_source, 99) == ["source"]
    assert fields_of(rules.check_purpose, common_pb2.PURPOSE_MODEL_DEVELOPMENT) == []
    assert fields_of(rules.check_purpose, 0) == ["purpose"]
    assert fields_of(rules.check_purpose, -1) == ["purpose"]


def test_expire_time_must_be_in_the_future() -> None:
    assert fields_of(rules.check_expire_time, None, T0) == []
    assert fields_of(rules.check_expire_time, T0 + HOUR, T0) == []
    assert fields_of(rules.check_expire_time, T0, T0) == ["expire_time"]


def test_checks_are_bounded_and_validated_by_index() -> None:
    assert fields_of(rules.check_checks, []) == ["checks"]
    assert fields_of(rules.check_checks, [("a", COMMERCE)] * 1000) == []
    # Past the limit only the list is reported, not a thousand entries.
    assert fields_of(rules.check_checks, [("", 0)] * 1001) == ["checks"]
    bad = [("a", COMMERCE), ("", COMMERCE), ("b", 0), ("c d", 42)]
    assert fields_of(rules.check_checks, bad) == [
        "checks[1].subject_id",
        "checks[2].source",
        "checks[3].subject_id",
        "checks[3].source",
    ]


def test_request_key_tells_a_retry_from_a_reuse() -> None:
    key = RequestKey.of("r1", "GrantConsent", b"payload")
    rules.ensure_same_request("GrantConsent", key.digest, key)  # a retry: no error
    for method, digest in [
        ("GrantConsent", RequestKey.of("r1", "GrantConsent", b"other").digest),
        ("WithdrawConsent", key.digest),
    ]:
        with pytest.raises(InvalidArgument) as info:
            rules.ensure_same_request(method, digest, key)
        assert info.value.reason == "REQUEST_ID_REUSED"
        assert [v.field for v in info.value.violations] == ["request_id"]


# --- page tokens -------------------------------------------------------------


def test_page_token_round_trips_for_its_subject_only() -> None:
    token = rules.token_after(consent(source=PAYMENTS, purpose=SCORING))
    assert rules.cursor_from_token(token, "s1") == (PAYMENTS, SCORING)
    assert rules.cursor_from_token("", "s1") is None
    for bad_token, subject in [
        (token, "someone_else"),
        ("%%%", "s1"),
        (encode_page_token({"subject": "s1", "source": "x", "purpose": 1}), "s1"),
        (encode_page_token({"subject": "s1", "source": True, "purpose": 1}), "s1"),
    ]:
        with pytest.raises(InvalidArgument) as info:
            rules.cursor_from_token(bad_token, subject)
        assert info.value.reason == "INVALID_PAGE_TOKEN"
        assert [v.field for v in info.value.violations] == ["page_token"]
