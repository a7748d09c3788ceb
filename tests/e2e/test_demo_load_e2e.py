"""The demo's population load (``creditscore run``) on the suite in one process:
every subject signed up with its consents in one call, and the wait for the
feature service that refuses to go on with half-applied features."""

from __future__ import annotations

import pytest

from creditscore.cli.run import NotApplied, load_population, wait_features
from creditscore.consent.v1 import consent_pb2, consent_pb2_grpc


async def test_the_load_signs_up_with_consents_and_the_wait_raises_when_short(inprocess_suite):
    suite = inprocess_suite.suite
    population, report = await load_population(suite, 12, seed=23, out=lambda *_: None)
    assert len(report.subject_secrets) == 12
    channel = await suite.operator_channel("consent_service")
    try:
        stub = consent_pb2_grpc.ConsentServiceStub(channel)
        for subject in population.subjects[:3]:
            listed = await stub.ListConsents(
                consent_pb2.ListConsentsRequest(subject_id=subject.subject_id, page_size=100), timeout=5)
            # Four sources to be scored (three for one who withholds external
            # records), the same for model development, and the loan outcomes.
            assert len(listed.consents) in (7, 9)
            assert all(c.state == consent_pb2.CONSENT_STATE_GRANTED for c in listed.consents)
    finally:
        await channel.close()
    applied = await wait_features(suite, population, report.accepted_for_features, timeout=60)
    assert applied == report.accepted_for_features
    # More than will ever be applied: an error at the deadline, not a short count.
    with pytest.raises(NotApplied, match=f"applied {applied} of {applied + 1} records"):
        await wait_features(suite, population, applied + 1, timeout=0.3)
