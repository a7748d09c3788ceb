"""The score lookup, composed: consent -> features -> score.

Pure composition over three small client interfaces, so that it is tested with
fakes and no gRPC. What it guarantees:

- no live consent for scoring (or no such subject): ``PermissionDenied`` with
  reason ``CONSENT_REQUIRED`` — the same answer either way, so that a caller
  cannot tell who is enrolled;
- only features from sources the subject has a live consent for reach the
  scorecard (a feature of a withdrawn source counts as "no data");
- each downstream call runs within the one ``Deadline`` of the lookup.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from creditscore.catalog import CATALOG
from creditscore.common.v1 import common_pb2
from creditscore.runtime import Deadline, PermissionDenied
from creditscore.scoring.v1 import scoring_pb2

__all__ = [
    "SCORED_SOURCES",
    "ConsentPort",
    "FeaturePort",
    "ScoringPort",
    "get_credit_score",
    "mask_unconsented",
]

# The sources a score may draw on (outcomes are labels, never scoring inputs).
SCORED_SOURCES: tuple[int, ...] = (
    common_pb2.DATA_SOURCE_COMMERCE,
    common_pb2.DATA_SOURCE_PAYMENTS,
    common_pb2.DATA_SOURCE_IDENTITY,
    common_pb2.DATA_SOURCE_EXTERNAL,
)
_SOURCE_OF = {f.name: f.source for f in CATALOG}


class ConsentPort(Protocol):
    async def granted_sources(self, subject_id: str, timeout: float) -> frozenset[int]:
        """The scored sources the subject has a live CREDIT_SCORING consent for."""


class FeaturePort(Protocol):
    async def feature_vector(
        self, subject_id: str, timeout: float
    ) -> Sequence[common_pb2.FeatureValue]:
        """The subject's current feature vector."""


class ScoringPort(Protocol):
    async def score(
        self, subject_id: str, features: Sequence[common_pb2.FeatureValue], timeout: float
    ) -> scoring_pb2.Score:
        """The active scorecard's score of the vector."""


def mask_unconsented(
    features: Sequence[common_pb2.FeatureValue], granted: frozenset[int]
) -> list[common_pb2.FeatureValue]:
    """The vector with every feature of a source without live consent set to
    "no data". Features not tied to one source (history length) stay."""
    out = []
    for feature in features:
        source = _SOURCE_OF.get(feature.name, common_pb2.DATA_SOURCE_UNSPECIFIED)
        if source != common_pb2.DATA_SOURCE_UNSPECIFIED and source not in granted:
            out.append(common_pb2.FeatureValue(name=feature.name))
        else:
            out.append(feature)
    return out


async def get_credit_score(
    subject_id: str,
    *,
    consent: ConsentPort,
    features: FeaturePort,
    scoring: ScoringPort,
    deadline: Deadline,
) -> scoring_pb2.Score:
    granted = await consent.granted_sources(subject_id, deadline.timeout())
    if not granted:
        raise PermissionDenied(
            "no live consent to score this subject", reason="CONSENT_REQUIRED"
        )
    vector = await features.feature_vector(subject_id, deadline.timeout())
    masked = mask_unconsented(vector, granted)
    return await scoring.score(subject_id, masked, deadline.timeout())
