"""The lookup's composition with fakes: no gRPC."""

from __future__ import annotations

import pytest

from creditscore.catalog import FEATURE_NAMES, by_name
from creditscore.common.v1 import common_pb2
from creditscore.runtime import Deadline, DeadlineExceeded, PermissionDenied
from creditscore.scoring.v1 import scoring_pb2
from gateway.lookup import SCORED_SOURCES, get_credit_score, mask_unconsented


def _vector() -> list[common_pb2.FeatureValue]:
    return [common_pb2.FeatureValue(name=n, value=float(i)) for i, n in enumerate(FEATURE_NAMES)]


class FakeConsent:
    def __init__(self, granted):
        self.granted = frozenset(granted)
        self.timeouts: list[float] = []

    async def granted_sources(self, subject_id, timeout):
        self.timeouts.append(timeout)
        return self.granted


class FakeFeatures:
    def __init__(self):
        self.calls = 0

    async def feature_vector(self, subject_id, timeout):
        self.calls += 1
        return _vector()


class FakeScoring:
    def __init__(self):
        self.seen = None

    async def score(self, subject_id, features, timeout):
        self.seen = list(features)
        return scoring_pb2.Score(subject_id=subject_id, score=700,
                                 state=common_pb2.SCORE_STATE_SCORED)


async def test_no_consent_is_denied_before_any_data_is_read():
    features = FakeFeatures()
    with pytest.raises(PermissionDenied) as info:
        await get_credit_score("s1", consent=FakeConsent([]), features=features,
                               scoring=FakeScoring(), deadline=Deadline(1.0))
    assert info.value.reason == "CONSENT_REQUIRED"
    assert features.calls == 0


async def test_features_of_unconsented_sources_never_reach_the_scorecard():
    scoring = FakeScoring()
    granted = [common_pb2.DATA_SOURCE_PAYMENTS]
    score = await get_credit_score("s1", consent=FakeConsent(granted), features=FakeFeatures(),
                                   scoring=scoring, deadline=Deadline(1.0))
    assert score.score == 700
    for feature in scoring.seen:
        source = by_name(feature.name).source
        if source in (common_pb2.DATA_SOURCE_PAYMENTS, common_pb2.DATA_SOURCE_UNSPECIFIED):
            assert feature.HasField("value"), feature.name
        else:
            assert not feature.HasField("value"), feature.name


def test_mask_keeps_everything_with_every_source_granted():
    vector = _vector()
    assert mask_unconsented(vector, frozenset(SCORED_SOURCES)) == vector


async def test_each_call_gets_what_is_left_of_one_deadline():
    consent = FakeConsent(SCORED_SOURCES)
    await get_credit_score("s1", consent=consent, features=FakeFeatures(),
                           scoring=FakeScoring(), deadline=Deadline(0.5))
    assert 0 < consent.timeouts[0] <= 0.5
    with pytest.raises(DeadlineExceeded):
        await get_credit_score("s1", consent=consent, features=FakeFeatures(),
                               scoring=FakeScoring(), deadline=Deadline(0.0))
