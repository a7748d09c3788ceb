"""A partner's lookup, composed: the subject's current score (materialized by the
feature service) -> the consent service's one question (authorize and record) ->
answer.

Pure composition over small, batch-shaped client interfaces (ports), so that it is
tested with fakes and no gRPC. Lookups are answered in batches (``answer_lookups``;
the gateway gathers concurrent lookups into one with ``creditscore.runtime.Batcher``):
a batch makes two downstream calls whatever its size (``GetCurrentScores``,
``RecordAccesses``), and each lookup of it gets its own answer or error. What it
guarantees, for every lookup:

- nothing leaves unless, at the moment its access-log entry is written, the
  partner holds the subject's live authorization for the purpose with a scope
  that covers the question (THRESHOLD or FULL_SCORE for a threshold, FULL_SCORE
  for the score) and the subject has a live consent to be scored for at least one
  source. The consent service checks this in the same transaction that writes
  the entry (``RecordAccesses``), so a revocation or withdrawal committed before
  it refuses the lookup: nothing is cached anywhere on the way;
- an unknown subject, no authorization, an expired or revoked one, a scope that
  does not cover the question and a subject without consent all raise the one
  ``not_authorized()`` error, the same status, reason and message, so a partner
  cannot tell who exists. Every lookup takes the same path (the current score is
  read for every subject, known or not: a subject without data gets the model's
  score of an empty vector) before that check;
- only features from sources the subject has a live consent for reach the
  answer: the lookup tells the consent service which sources the score drew on,
  and when one of them has lost its consent the consent service writes nothing
  and names the sources still granted; the lookup then reads the subject's
  vector, scores it again without the others (``FeatureService.GetFeatureVectors``,
  ``ScoringService.ScoreBatch``) and asks again (``SOURCES_CHANGED``, at most
  ``MAX_ATTEMPTS`` questions in all);
- the answer is written to the access log (with the answer itself, serialized)
  and committed before it is returned; a log that cannot be written is
  ``Unavailable`` (``ACCESS_LOG_UNAVAILABLE``) and no answer;
- a transaction id seen before (within the log's 24 hours) for the same question
  returns the stored answer, byte for byte, and writes nothing; for another
  question it is ``InvalidArgument`` (``TRANSACTION_ID_REUSED``). The
  authorization is checked first all the same: a revoked one refuses a replay too;
- every downstream call runs within the one ``Deadline`` of the batch (the latest
  of its lookups' deadlines; each lookup also fails at its own).
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from creditscore.common.v1 import common_pb2
from creditscore.consent.v1 import consent_pb2
from creditscore.features.catalog import CATALOG
from creditscore.features.catalog import sources_used as catalog_sources_used
from creditscore.gateway.v1 import gateway_pb2
from creditscore.runtime import (
    Aborted,
    Deadline,
    DomainError,
    FieldViolation,
    InvalidArgument,
    PermissionDenied,
    Violations,
    check_subject_id,
)
from creditscore.scoring.v1 import scoring_pb2

__all__ = [
    "MAX_ATTEMPTS",
    "MAX_THRESHOLD",
    "MIN_THRESHOLD",
    "NOT_AUTHORIZED_MESSAGE",
    "SCORED_SOURCES",
    "Access",
    "AccessOutcome",
    "Answer",
    "ConsentPort",
    "FeaturePort",
    "Lookup",
    "Recorded",
    "ScoringPort",
    "ScoreQuestion",
    "ThresholdQuestion",
    "answer_lookups",
    "answer_score",
    "answer_threshold",
    "check_question",
    "decide",
    "mask_unconsented",
    "not_authorized",
    "sources_used",
    "transaction_reused",
]

# The sources a score may draw on (outcomes are labels, never scoring inputs).
SCORED_SOURCES: tuple[common_pb2.DataSource.ValueType, ...] = (
    common_pb2.DATA_SOURCE_COMMERCE,
    common_pb2.DATA_SOURCE_PAYMENTS,
    common_pb2.DATA_SOURCE_IDENTITY,
    common_pb2.DATA_SOURCE_EXTERNAL,
)
_SOURCE_OF = {f.name: f.source for f in CATALOG}

MIN_THRESHOLD, MAX_THRESHOLD = 350, 950
#: How many times a lookup scores again when consents change under it.
MAX_ATTEMPTS = 3
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


class AccessOutcome(enum.Enum):
    """What the consent service did with a lookup's answer (``AccessOutcomeKind``)."""

    RECORDED = consent_pb2.ACCESS_OUTCOME_KIND_RECORDED
    REPLAYED = consent_pb2.ACCESS_OUTCOME_KIND_REPLAYED
    NOT_AUTHORIZED = consent_pb2.ACCESS_OUTCOME_KIND_NOT_AUTHORIZED
    TRANSACTION_ID_REUSED = consent_pb2.ACCESS_OUTCOME_KIND_TRANSACTION_ID_REUSED
    SOURCES_CHANGED = consent_pb2.ACCESS_OUTCOME_KIND_SOURCES_CHANGED


@dataclass(frozen=True)
class Access:
    """One lookup's answer, to be authorized and written to the access log."""

    subject_id: str
    partner_id: str
    purpose: int
    transaction_id: str
    answer: consent_pb2.AccessAnswer
    response: bytes
    sources_used: frozenset[int]


@dataclass(frozen=True)
class Recorded:
    """The consent service's verdict on an ``Access``: for RECORDED and REPLAYED
    the entry's answer and the answer as sent (serialized response); for
    SOURCES_CHANGED the sources still granted."""

    outcome: AccessOutcome
    answer: consent_pb2.AccessAnswer | None = None
    response: bytes = b""
    granted_sources: frozenset[int] = frozenset()


class ConsentPort(Protocol):
    async def record(self, accesses: Sequence[Access], timeout: float) -> Sequence[Recorded]:
        """Authorizes each access and writes those that may be answered, durably,
        in one call (``RecordAccesses``): one verdict per access, in order.
        ``Unavailable`` (ACCESS_LOG_UNAVAILABLE) when they cannot be written."""


class FeaturePort(Protocol):
    async def current_scores(
        self, subject_ids: Sequence[str], timeout: float
    ) -> Sequence[tuple[scoring_pb2.Score, frozenset[int]]]:
        """Each subject's current score under the active model and the scored
        sources it drew on, in order (``GetCurrentScores``)."""

    async def feature_vectors(
        self, subject_ids: Sequence[str], timeout: float
    ) -> Sequence[Sequence[common_pb2.FeatureValue]]:
        """The subjects' current feature vectors, in order (``GetFeatureVectors``)."""


class ScoringPort(Protocol):
    async def scores(
        self, items: Sequence[tuple[str, Sequence[common_pb2.FeatureValue]]], timeout: float
    ) -> Sequence[scoring_pb2.Score]:
        """The active scorecard's score of each (subject, vector), in order (``ScoreBatch``)."""


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


Answer = gateway_pb2.GetCreditScoreResponse | gateway_pb2.CheckCreditThresholdResponse


@dataclass(frozen=True)
class Lookup:
    """One partner's question, as the lookups of a batch are answered together."""

    question: ScoreQuestion | ThresholdQuestion
    partner_id: str


def _build(
    question: ScoreQuestion | ThresholdQuestion, score: scoring_pb2.Score
) -> tuple[consent_pb2.AccessAnswer, Answer]:
    """The answer to ``question`` from ``score``, and what the access log keeps of it."""
    if isinstance(question, ThresholdQuestion):
        decision = decide(score, question.threshold)
        threshold = gateway_pb2.CheckCreditThresholdResponse(
            subject_id=question.subject_id,
            threshold=question.threshold,
            decision=decision,  # type: ignore[arg-type]
            transaction_id=question.transaction_id,
        )
        if score.HasField("score_time"):
            threshold.decision_time.CopyFrom(score.score_time)
        return consent_pb2.AccessAnswer(threshold=consent_pb2.ThresholdAnswer(
            threshold=question.threshold, decision=decision,  # type: ignore[arg-type]
        )), threshold
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
    return consent_pb2.AccessAnswer(score=consent_pb2.ScoreAnswer(
        state=score.state, score=score.score, band=score.band,
        reason_codes=[r.code for r in score.reasons], model_version=score.model_version,
    )), gateway_pb2.GetCreditScoreResponse(credit_score=credit, transaction_id=question.transaction_id)


def _replay(question: ScoreQuestion | ThresholdQuestion, recorded: Recorded) -> Answer:
    """The stored answer of an earlier call with the same transaction id, when it
    asked the same question; ``TRANSACTION_ID_REUSED`` otherwise."""
    answer = recorded.answer
    if isinstance(question, ThresholdQuestion):
        if (answer is not None and answer.WhichOneof("answer") == "threshold"
                and answer.threshold.threshold == question.threshold):
            return gateway_pb2.CheckCreditThresholdResponse.FromString(recorded.response)
    elif answer is not None and answer.WhichOneof("answer") == "score":
        return gateway_pb2.GetCreditScoreResponse.FromString(recorded.response)
    raise transaction_reused()


async def answer_score(
    question: ScoreQuestion,
    partner_id: str,
    *,
    consent: ConsentPort,
    features: FeaturePort,
    scoring: ScoringPort,
    deadline: Deadline,
) -> gateway_pb2.GetCreditScoreResponse:
    """The full score for a partner with a FULL_SCORE authorization (one lookup)."""
    return await _one(Lookup(question, partner_id), consent, features, scoring, deadline)  # type: ignore[return-value]


async def answer_threshold(
    question: ThresholdQuestion,
    partner_id: str,
    *,
    consent: ConsentPort,
    features: FeaturePort,
    scoring: ScoringPort,
    deadline: Deadline,
) -> gateway_pb2.CheckCreditThresholdResponse:
    """Whether the score meets the partner's threshold; nothing else (one lookup)."""
    return await _one(Lookup(question, partner_id), consent, features, scoring, deadline)  # type: ignore[return-value]


async def _one(
    lookup: Lookup, consent: ConsentPort, features: FeaturePort, scoring: ScoringPort, deadline: Deadline
) -> Answer:
    (result,) = await answer_lookups(
        [lookup], consent=consent, features=features, scoring=scoring, deadline=deadline
    )
    if isinstance(result, DomainError):
        raise result
    return result


async def answer_lookups(
    lookups: Sequence[Lookup],
    *,
    consent: ConsentPort,
    features: FeaturePort,
    scoring: ScoringPort,
    deadline: Deadline,
) -> list[Answer | DomainError]:
    """The answers of a batch of lookups, in order: each an answer, or the error it
    alone would have failed with (not valid, not authorized, a reused
    transaction id). Two downstream calls for the whole batch: the current
    scores, then the consent service's authorize-and-record; and for the lookups
    whose subject lost a source's consent meanwhile, their vectors, scores
    without the other sources, and records again. A downstream call that fails
    fails every lookup of the batch still waiting on it (raised)."""
    results: list[Answer | DomainError | None] = [None] * len(lookups)
    pending: list[int] = []
    for i, lookup in enumerate(lookups):
        try:
            check_question(lookup.question)
        except DomainError as exc:
            results[i] = exc
        else:
            pending.append(i)
    if pending:
        current = await features.current_scores(
            [lookups[i].question.subject_id for i in pending], deadline.timeout()
        )
        scored = {i: score for i, (score, _) in zip(pending, current, strict=True)}
        used = {i: drew_on for i, (_, drew_on) in zip(pending, current, strict=True)}
        vector_of: dict[int, Sequence[common_pb2.FeatureValue]] = {}
        granted: dict[int, frozenset[int]] = {}
        for attempt in range(MAX_ATTEMPTS):
            if not pending:
                break
            if attempt:  # sources changed under these: score their vectors without the others
                missing = [i for i in pending if i not in vector_of]
                if missing:
                    vectors = await features.feature_vectors(
                        [lookups[i].question.subject_id for i in missing], deadline.timeout()
                    )
                    vector_of.update(zip(missing, vectors, strict=True))
                masked = {i: mask_unconsented(vector_of[i], granted[i]) for i in pending}
                rescored = await scoring.scores(
                    [(lookups[i].question.subject_id, masked[i]) for i in pending], deadline.timeout()
                )
                scored.update(zip(pending, rescored, strict=True))
                used.update((i, sources_used(masked[i])) for i in pending)
            built = {i: _build(lookups[i].question, scored[i]) for i in pending}
            payloads = {i: built[i][1].SerializeToString(deterministic=True) for i in pending}
            recorded = await consent.record(
                [
                    Access(
                        lookups[i].question.subject_id, lookups[i].partner_id, lookups[i].question.purpose,
                        lookups[i].question.transaction_id, built[i][0], payloads[i], used[i],
                    )
                    for i in pending
                ],
                deadline.timeout(),
            )
            again: list[int] = []
            for i, outcome in zip(pending, recorded, strict=True):
                results[i] = _settle(lookups[i].question, outcome, built[i][1])
                if outcome.outcome is AccessOutcome.SOURCES_CHANGED:
                    granted[i] = outcome.granted_sources
                    again.append(i)
            pending = again
        for i in pending:  # consents kept changing under it
            results[i] = Aborted(
                "the subject's consents kept changing during the lookup; try again",
                reason="CONSENT_CHANGED",
            )
    return results  # type: ignore[return-value]  # every lookup settled above


def _settle(
    question: ScoreQuestion | ThresholdQuestion, recorded: Recorded, built: Answer
) -> Answer | DomainError | None:
    """What the consent service's verdict makes of one lookup: its answer, an
    error, or None when it must be scored again (``SOURCES_CHANGED``)."""
    match recorded.outcome:
        case AccessOutcome.RECORDED:
            return built
        case AccessOutcome.REPLAYED:
            try:
                return _replay(question, recorded)
            except DomainError as exc:
                return exc
        case AccessOutcome.TRANSACTION_ID_REUSED:
            return transaction_reused()
        case AccessOutcome.SOURCES_CHANGED:
            return None
        case _:
            return not_authorized()


def sources_used(features: Sequence[common_pb2.FeatureValue]) -> frozenset[int]:
    """The scored sources with a value in ``features`` (what an answer drew on):
    the catalog's rule, the one the feature service keeps with each score."""
    return catalog_sources_used((f.name, f.value if f.HasField("value") else None) for f in features)
