"""A partner's lookup, composed: authorization -> consent -> features -> score ->
access log -> answer.

Pure composition over small client interfaces (ports), so that it is tested with
fakes and no gRPC. What it guarantees:

- nothing is read about a subject unless the partner holds the subject's live
  authorization for the purpose, with a scope that covers the question (THRESHOLD
  or FULL_SCORE for a threshold, FULL_SCORE for the score), and the subject has a
  live consent to be scored for at least one source;
- an unknown subject, no authorization, an expired or revoked one, a scope that
  does not cover the question and a subject without consent all raise the one
  ``not_authorized()`` error, the same status, reason and message, so a partner
  cannot tell who exists;
- only features from sources the subject has a live consent for reach the
  scorecard (a feature of a withdrawn source counts as "no data");
- the answer is written to the access log (with the answer itself, serialized)
  before it is returned; a log that cannot be written is ``Unavailable``
  (``ACCESS_LOG_UNAVAILABLE``) and no answer;
- a transaction id seen before (within the log's 24 hours) for the same question
  returns the stored answer, byte for byte, and writes nothing; for another
  question it is ``InvalidArgument`` (``TRANSACTION_ID_REUSED``). The
  authorization is checked first all the same: a revoked one refuses a replay too.
- every downstream call runs within the one ``Deadline`` of the lookup.

Nothing is cached: a withdrawn consent or a revoked authorization takes effect on
the very next lookup.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from google.protobuf.message import Message

from creditscore.catalog import CATALOG
from creditscore.common.v1 import common_pb2
from creditscore.consent.v1 import consent_pb2
from creditscore.gateway.v1 import gateway_pb2
from creditscore.runtime import (
    Deadline,
    FieldViolation,
    InvalidArgument,
    PermissionDenied,
    Violations,
    check_subject_id,
)
from creditscore.scoring.v1 import scoring_pb2

__all__ = [
    "MAX_THRESHOLD",
    "MIN_THRESHOLD",
    "NOT_AUTHORIZED_MESSAGE",
    "SCORED_SOURCES",
    "Authorization",
    "ConsentPort",
    "FeaturePort",
    "Recorded",
    "ScoringPort",
    "ScoreQuestion",
    "ThresholdQuestion",
    "answer_score",
    "answer_threshold",
    "check_question",
    "decide",
    "mask_unconsented",
    "not_authorized",
    "transaction_reused",
]

# The sources a score may draw on (outcomes are labels, never scoring inputs).
SCORED_SOURCES: tuple[int, ...] = (
    common_pb2.DATA_SOURCE_COMMERCE,
    common_pb2.DATA_SOURCE_PAYMENTS,
    common_pb2.DATA_SOURCE_IDENTITY,
    common_pb2.DATA_SOURCE_EXTERNAL,
)
_SOURCE_OF = {f.name: f.source for f in CATALOG}

MIN_THRESHOLD, MAX_THRESHOLD = 350, 950
MAX_TRANSACTION_ID_LENGTH = 128
NOT_AUTHORIZED_MESSAGE = "the partner is not authorized to look this subject up for this purpose"
_VALID_PURPOSES = frozenset(
    v.number for v in common_pb2.AccessPurpose.DESCRIPTOR.values if v.number != 0
)
_FULL = common_pb2.AUTHORIZATION_SCOPE_FULL_SCORE
_COVERS_THRESHOLD = frozenset({common_pb2.AUTHORIZATION_SCOPE_THRESHOLD, _FULL})


def not_authorized() -> PermissionDenied:
    """The one refusal of every unauthorized path: same code, reason, message, and
    no metadata."""
    return PermissionDenied(NOT_AUTHORIZED_MESSAGE, reason="NOT_AUTHORIZED")


def transaction_reused() -> InvalidArgument:
    return InvalidArgument(
        "transaction_id was already used for another question",
        [FieldViolation("transaction_id", "already used for another question in the last 24 hours")],
        reason="TRANSACTION_ID_REUSED",
    )


@dataclass(frozen=True)
class Authorization:
    """The consent service's answer for (subject, partner, purpose)."""

    authorized: bool
    scope: int = common_pb2.AUTHORIZATION_SCOPE_UNSPECIFIED


@dataclass(frozen=True)
class Recorded:
    """An access log entry as the gateway needs it: what was answered (the
    ``AccessAnswer``) and the answer as sent (serialized response)."""

    answer: consent_pb2.AccessAnswer
    response: bytes


class ConsentPort(Protocol):
    async def authorization(
        self, subject_id: str, partner_id: str, purpose: int, timeout: float
    ) -> Authorization:
        """The scope of the live authorization, or not authorized."""

    async def granted_sources(self, subject_id: str, timeout: float) -> frozenset[int]:
        """The scored sources the subject has a live CREDIT_SCORING consent for."""

    async def recorded(
        self, partner_id: str, transaction_id: str, subject_id: str, purpose: int, timeout: float
    ) -> Recorded | None:
        """The entry the transaction id was recorded under in the last 24 hours."""

    async def record_access(
        self,
        subject_id: str,
        partner_id: str,
        purpose: int,
        transaction_id: str,
        answer: consent_pb2.AccessAnswer,
        response: bytes,
        timeout: float,
    ) -> Recorded:
        """Writes the access durably (or finds the entry of an earlier call with
        the same transaction id). ``PermissionDenied`` (NOT_AUTHORIZED) when the
        authorization is no longer live; ``Unavailable`` (ACCESS_LOG_UNAVAILABLE)
        when it cannot be written."""


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


@dataclass(frozen=True)
class ScoreQuestion:
    subject_id: str
    purpose: int
    transaction_id: str


@dataclass(frozen=True)
class ThresholdQuestion:
    subject_id: str
    purpose: int
    transaction_id: str
    threshold: int


def check_question(question: ScoreQuestion | ThresholdQuestion) -> None:
    """``InvalidArgument`` with every bad field: subject id, purpose, transaction id
    (required, 1-128 printable ASCII) and, for a threshold, 350-950."""
    v = Violations()
    check_subject_id(v, question.subject_id)
    if question.purpose == common_pb2.ACCESS_PURPOSE_UNSPECIFIED:
        v.add("purpose", "must be set")
    elif question.purpose not in _VALID_PURPOSES:
        v.add("purpose", f"unknown purpose {question.purpose}")
    txn = question.transaction_id
    if not txn:
        v.add("transaction_id", "must be set")
    elif len(txn) > MAX_TRANSACTION_ID_LENGTH or not all(" " <= c <= "~" for c in txn):
        v.add("transaction_id", f"must be 1-{MAX_TRANSACTION_ID_LENGTH} printable ASCII characters")
    if isinstance(question, ThresholdQuestion) and not (
        MIN_THRESHOLD <= question.threshold <= MAX_THRESHOLD
    ):
        v.add("threshold", f"must be between {MIN_THRESHOLD} and {MAX_THRESHOLD}")
    v.raise_if_any("the request is not valid")


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


def decide(score: scoring_pb2.Score, threshold: int) -> int:
    """MEETS at or above the threshold, BELOW under it, INSUFFICIENT_DATA without a score."""
    if score.state != common_pb2.SCORE_STATE_SCORED:
        return common_pb2.THRESHOLD_DECISION_INSUFFICIENT_DATA
    if score.score >= threshold:
        return common_pb2.THRESHOLD_DECISION_MEETS
    return common_pb2.THRESHOLD_DECISION_BELOW


M = TypeVar("M", bound=Message)


async def answer_score(
    question: ScoreQuestion,
    partner_id: str,
    *,
    consent: ConsentPort,
    features: FeaturePort,
    scoring: ScoringPort,
    deadline: Deadline,
) -> gateway_pb2.GetCreditScoreResponse:
    """The full score for a partner with a FULL_SCORE authorization."""

    def build(score: scoring_pb2.Score) -> tuple[consent_pb2.AccessAnswer, gateway_pb2.GetCreditScoreResponse]:
        credit = gateway_pb2.CreditScore(
            subject_id=question.subject_id,
            state=score.state,
            score=score.score,
            band=score.band,
            reasons=score.reasons,
            model_version=score.model_version,
        )
        if score.HasField("score_time"):
            credit.score_time.CopyFrom(score.score_time)
        answer = consent_pb2.AccessAnswer(score=consent_pb2.ScoreAnswer(
            state=score.state, score=score.score, band=score.band,
            reason_codes=[r.code for r in score.reasons], model_version=score.model_version,
        ))
        return answer, gateway_pb2.GetCreditScoreResponse(
            credit_score=credit, transaction_id=question.transaction_id
        )

    def same(answer: consent_pb2.AccessAnswer) -> bool:
        return answer.WhichOneof("answer") == "score"

    return await _answer(
        question, partner_id, full_score=True, build=build, same=same,
        parse=gateway_pb2.GetCreditScoreResponse.FromString,
        consent=consent, features=features, scoring=scoring, deadline=deadline,
    )


async def answer_threshold(
    question: ThresholdQuestion,
    partner_id: str,
    *,
    consent: ConsentPort,
    features: FeaturePort,
    scoring: ScoringPort,
    deadline: Deadline,
) -> gateway_pb2.CheckCreditThresholdResponse:
    """Whether the score meets the partner's threshold; nothing else."""

    def build(score: scoring_pb2.Score) -> tuple[consent_pb2.AccessAnswer, gateway_pb2.CheckCreditThresholdResponse]:
        decision = decide(score, question.threshold)
        response = gateway_pb2.CheckCreditThresholdResponse(
            subject_id=question.subject_id,
            threshold=question.threshold,
            decision=decision,  # type: ignore[arg-type]
            transaction_id=question.transaction_id,
        )
        if score.HasField("score_time"):
            response.decision_time.CopyFrom(score.score_time)
        answer = consent_pb2.AccessAnswer(threshold=consent_pb2.ThresholdAnswer(
            threshold=question.threshold, decision=decision,  # type: ignore[arg-type]
        ))
        return answer, response

    def same(answer: consent_pb2.AccessAnswer) -> bool:
        return (answer.WhichOneof("answer") == "threshold"
                and answer.threshold.threshold == question.threshold)

    return await _answer(
        question, partner_id, full_score=False, build=build, same=same,
        parse=gateway_pb2.CheckCreditThresholdResponse.FromString,
        consent=consent, features=features, scoring=scoring, deadline=deadline,
    )


async def _answer(
    question: ScoreQuestion | ThresholdQuestion,
    partner_id: str,
    *,
    full_score: bool,
    build: Callable[[scoring_pb2.Score], tuple[consent_pb2.AccessAnswer, M]],
    same: Callable[[consent_pb2.AccessAnswer], bool],
    parse: Callable[[bytes], M],
    consent: ConsentPort,
    features: FeaturePort,
    scoring: ScoringPort,
    deadline: Deadline,
) -> M:
    check_question(question)
    subject, purpose, txn = question.subject_id, question.purpose, question.transaction_id
    # The three questions to the consent service at once (one round trip of
    # latency); their answers are read in this order, the authorization first,
    # so that an unauthorized caller learns nothing from the others.
    timeout = deadline.timeout()
    authorization, granted, earlier = await asyncio.gather(
        consent.authorization(subject, partner_id, purpose, timeout),
        consent.granted_sources(subject, timeout),
        consent.recorded(partner_id, txn, subject, purpose, timeout),
        return_exceptions=True,
    )
    auth = _result(authorization)
    if not auth.authorized:
        raise not_authorized()
    if full_score and auth.scope != _FULL:
        raise not_authorized()
    if not full_score and auth.scope not in _COVERS_THRESHOLD:
        raise not_authorized()
    if not _result(granted):
        raise not_authorized()
    before = _result(earlier)
    if before is not None:
        if not same(before.answer):
            raise transaction_reused()
        return parse(before.response)

    vector = await features.feature_vector(subject, deadline.timeout())
    masked = mask_unconsented(vector, _result(granted))
    score = await scoring.score(subject, masked, deadline.timeout())
    answer, response = build(score)
    payload = response.SerializeToString(deterministic=True)
    recorded = await consent.record_access(
        subject, partner_id, purpose, txn, answer, payload, deadline.timeout()
    )
    if recorded.response != payload:
        # The same transaction id, recorded first by a concurrent call: its answer.
        if not same(recorded.answer):
            raise transaction_reused()
        return parse(recorded.response)
    return parse(payload)


def _result(value: Any) -> Any:
    if isinstance(value, BaseException):
        raise value
    return value

