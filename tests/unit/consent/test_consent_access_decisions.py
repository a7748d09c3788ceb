"""``authorizations.decide_accesses`` without a database: the rules of the lookup's
one question, in their order, for a batch of lookups."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

from consent_service import authorizations as rules
from consent_service.authorizations import (
    ANSWER_SCORE,
    ANSWER_THRESHOLD,
    SCOPE_FULL_SCORE,
    SCOPE_THRESHOLD,
    AccessEntry,
    AccessOutcomeKind,
    AccessToRecord,
    Authorization,
)
from consent_service.consents import Consent
from creditscore.common.v1 import common_pb2
from creditscore.runtime import Violations

T0 = datetime(2030, 1, 1, tzinfo=UTC)
HOUR = timedelta(hours=1)
CREDIT = common_pb2.ACCESS_PURPOSE_CREDIT_APPLICATION
RENTAL = common_pb2.ACCESS_PURPOSE_RENTAL
COMMERCE = common_pb2.DATA_SOURCE_COMMERCE
PAYMENTS = common_pb2.DATA_SOURCE_PAYMENTS
IDENTITY = common_pb2.DATA_SOURCE_IDENTITY
EXTERNAL = common_pb2.DATA_SOURCE_EXTERNAL
OUTCOMES = common_pb2.DATA_SOURCE_OUTCOMES
SCORING = common_pb2.PURPOSE_CREDIT_SCORING
MODELLING = common_pb2.PURPOSE_MODEL_DEVELOPMENT

K = AccessOutcomeKind


def item(subject_id: str = "s1", transaction_id: str = "tx-1", *, purpose: int = CREDIT,
         kind: str = ANSWER_THRESHOLD, sources: tuple[int, ...] = (PAYMENTS,)) -> AccessToRecord:
    return AccessToRecord(subject_id, "acme", purpose, transaction_id, kind, b"answer", b"response",
                          frozenset(sources))


def grant(subject_id: str = "s1", *, purpose: int = CREDIT, scope: int = SCOPE_THRESHOLD,
          expire: datetime = T0 + 24 * HOUR, revoked: datetime | None = None) -> Authorization:
    return Authorization(subject_id, "acme", purpose, scope, T0 - HOUR, expire, revoked, partner_name="Acme")


def consent(subject_id: str = "s1", source: int = PAYMENTS, *, purpose: int = SCORING,
            expire: datetime | None = None, withdrawn: datetime | None = None) -> Consent:
    return Consent(subject_id, source, purpose, T0 - HOUR, expire, withdrawn)


def entry(subject_id: str = "s1", transaction_id: str = "tx-1", *, purpose: int = CREDIT,
          at: datetime = T0 - HOUR) -> AccessEntry:
    return AccessEntry("acc_old", subject_id, "acme", purpose, transaction_id, SCOPE_THRESHOLD, b"old answer",
                       b"old response", at, "Acme")


def decide(items: list[AccessToRecord], *, subjects: tuple[str, ...] = ("s1",),
           grants: tuple[Authorization, ...] = (), consents: tuple[Consent, ...] = (),
           entries: tuple[AccessEntry, ...] = (), now: datetime = T0) -> list[rules.AccessOutcome]:
    counter = itertools.count()
    return rules.decide_accesses(
        items,
        subjects=set(subjects),
        authorizations={(g.subject_id, g.partner_id, g.purpose): g for g in grants},
        consents=consents,
        entries={(e.partner_id, e.transaction_id): e for e in entries},
        now=now,
        new_id=lambda: f"acc_{next(counter)}",
    )


def test_scored_sources_are_every_source_but_outcomes() -> None:
    assert rules.SCORED_SOURCES == {COMMERCE, PAYMENTS, IDENTITY, EXTERNAL}


def test_a_new_lookup_is_recorded_under_its_authorization() -> None:
    [outcome] = decide([item(kind=ANSWER_SCORE)], grants=(grant(scope=SCOPE_FULL_SCORE),), consents=(consent(),),
                       now=T0 + HOUR)
    assert outcome.kind is K.RECORDED
    assert outcome.entry == AccessEntry("acc_0", "s1", "acme", CREDIT, "tx-1", SCOPE_FULL_SCORE, b"answer",
                                        b"response", T0 + HOUR, "Acme")


def test_what_makes_a_lookup_not_authorized() -> None:
    ok: dict[str, Any] = {"grants": (grant(),), "consents": (consent(),)}
    assert decide([item()], **ok)[0].kind is K.RECORDED
    refused = [
        decide([item()], subjects=(), **ok),
        decide([item()], consents=(consent(),)),
        decide([item(purpose=RENTAL)], **ok),
        decide([item(kind=ANSWER_SCORE)], **ok),
        decide([item()], grants=(grant(expire=T0),), consents=(consent(),)),
        decide([item()], grants=(grant(revoked=T0 - HOUR),), consents=(consent(),)),
        decide([item()], grants=(grant(),)),
        decide([item()], grants=(grant(),), consents=(consent(expire=T0),)),
        decide([item()], grants=(grant(),), consents=(consent(withdrawn=T0 - HOUR),)),
        decide([item()], grants=(grant(),), consents=(consent(purpose=MODELLING),)),
        decide([item(sources=())], grants=(grant(),), consents=(consent(source=OUTCOMES),)),
        decide([item()], grants=(grant(),), consents=(consent(subject_id="s2"),)),
    ]
    for outcomes in refused:
        assert outcomes == [rules.AccessOutcome(K.NOT_AUTHORIZED)]


def test_refusal_comes_before_replay_replay_before_sources() -> None:
    granted: dict[str, Any] = {"grants": (grant(),), "consents": (consent(),)}
    old = entry()
    # Refused: nothing about the transaction id leaks, same subject or not.
    assert decide([item()], consents=(consent(),), entries=(old,))[0].kind is K.NOT_AUTHORIZED
    assert decide([item("s2")], subjects=("s1", "s2"), entries=(old,), **granted)[0].kind is (
        K.NOT_AUTHORIZED)
    # Authorized: the replay, even when a source it drew on lost its consent since.
    [replay] = decide([item(sources=(PAYMENTS, COMMERCE))], entries=(old,), **granted)
    assert replay.kind is K.REPLAYED and replay.entry == old
    [reused] = decide([item(purpose=RENTAL)], grants=(grant(purpose=RENTAL),), consents=(consent(),),
                      entries=(old,))
    assert reused.kind is K.TRANSACTION_ID_REUSED and reused.entry is None
    [changed] = decide([item(transaction_id="tx-2", sources=(PAYMENTS, COMMERCE))], entries=(old,),
                       **granted)
    assert changed == rules.AccessOutcome(K.SOURCES_CHANGED, granted_sources=frozenset({PAYMENTS}))


def test_an_entry_holds_its_transaction_id_for_24_hours() -> None:
    granted: dict[str, Any] = {"grants": (grant(expire=T0 + 48 * HOUR),), "consents": (consent(),)}
    old = entry(at=T0)
    assert decide([item()], entries=(old,), now=T0 + 24 * HOUR - timedelta(microseconds=1),
                  **granted)[0].kind is K.REPLAYED
    assert decide([item()], entries=(old,), now=T0 + 24 * HOUR, **granted)[0].kind is K.RECORDED


def test_an_item_recorded_earlier_in_the_batch_holds_its_transaction_id() -> None:
    outcomes = decide(
        [
            item(sources=(COMMERCE,)),  # SOURCES_CHANGED: holds nothing
            item("s2"),  # NOT_AUTHORIZED: holds nothing
            item(),  # RECORDED
            item(),  # REPLAYED of it
            item(purpose=RENTAL),  # TRANSACTION_ID_REUSED
        ],
        subjects=("s1", "s2"),
        grants=(grant(), grant(purpose=RENTAL)),
        consents=(consent(),),
    )
    assert [o.kind for o in outcomes] == [
        K.SOURCES_CHANGED, K.NOT_AUTHORIZED, K.RECORDED, K.REPLAYED, K.TRANSACTION_ID_REUSED]
    assert outcomes[3].entry == outcomes[2].entry and outcomes[2].entry is not None
    assert outcomes[2].entry.access_id == "acc_0"


def test_sources_used_must_be_scored_sources() -> None:
    v = Violations()
    rules.check_sources_used(v, [PAYMENTS, PAYMENTS, OUTCOMES, 0, 99], "accesses[2].sources_used")
    assert [(i.field, i.description) for i in v.items] == [
        ("accesses[2].sources_used[2]", "not a scored data source: 5"),
        ("accesses[2].sources_used[3]", "not a scored data source: 0"),
        ("accesses[2].sources_used[4]", "not a scored data source: 99"),
    ]
