"""The partner's lookup composed over fakes: no gRPC. One refusal for every
unauthorized path and nothing written for it, the access log written before the
answer, transaction ids answered once, unconsented sources never in an answer."""

from __future__ import annotations

import asyncio

import pytest

from creditscore.common.v1 import common_pb2
from creditscore.features.catalog import FEATURE_NAMES, by_name
from creditscore.gateway.v1 import gateway_pb2
from creditscore.runtime import (
    Aborted,
    Deadline,
    DeadlineExceeded,
    InvalidArgument,
    PermissionDenied,
    Unavailable,
    to_timestamp,
    utcnow,
)
from creditscore.scoring.v1 import scoring_pb2
from gateway.lookup import (
    MAX_ATTEMPTS,
    NOT_AUTHORIZED_MESSAGE,
    SCORED_SOURCES,
    AccessOutcome,
    Lookup,
    Recorded,
    ScoreQuestion,
    ThresholdQuestion,
    answer_lookups,
    answer_score,
    answer_threshold,
    decide,
    mask_unconsented,
    sources_used,
)

LOAN = common_pb2.ACCESS_PURPOSE_CREDIT_APPLICATION
RENTAL = common_pb2.ACCESS_PURPOSE_RENTAL
FULL = common_pb2.AUTHORIZATION_SCOPE_FULL_SCORE
THRESHOLD = common_pb2.AUTHORIZATION_SCOPE_THRESHOLD


def _vector() -> list[common_pb2.FeatureValue]:
    return [common_pb2.FeatureValue(name=n, value=float(i)) for i, n in enumerate(FEATURE_NAMES)]


class FakeConsent:
    """The consent service's RecordAccesses rules over dicts: authorization (with
    consent to be scored), then replay, then sources, then the entry."""

    def __init__(self):
        self.scopes: dict[tuple[str, str, int], int] = {}
        self.granted: dict[str, frozenset[int]] = {}
        self.log: dict[tuple[str, str], tuple[str, int, Recorded]] = {}
        self.entries = 0
        self.fail_log = False
        self.deadlines: list[float] = []
        self.asked: list = []
        self.revoke_before_write = False

    def authorize(self, subject, partner="p1", purpose=LOAN, scope=FULL, sources=SCORED_SOURCES):
        self.scopes[(subject, partner, purpose)] = scope
        self.granted[subject] = frozenset(sources)

    async def record(self, accesses, timeout):
        self.deadlines.append(timeout)
        if self.fail_log:
            raise Unavailable("the access log is down", reason="ACCESS_LOG_UNAVAILABLE")
        return [self._one(a) for a in accesses]

    def _one(self, access):
        self.asked.append(access)
        key3 = (access.subject_id, access.partner_id, access.purpose)
        if self.revoke_before_write:
            self.scopes.pop(key3, None)
        scope = self.scopes.get(key3)
        granted = self.granted.get(access.subject_id, frozenset())
        if scope is None or not granted or (access.answer.WhichOneof("answer") == "score" and scope != FULL):
            return Recorded(AccessOutcome.NOT_AUTHORIZED)
        key = (access.partner_id, access.transaction_id)
        if key in self.log:
            subject, purpose, entry = self.log[key]
            if (subject, purpose) != (access.subject_id, access.purpose):
                return Recorded(AccessOutcome.TRANSACTION_ID_REUSED)
            return Recorded(AccessOutcome.REPLAYED, entry.answer, entry.response)
        if not access.sources_used <= granted:
            return Recorded(AccessOutcome.SOURCES_CHANGED, granted_sources=granted)
        self.entries += 1
        entry = Recorded(AccessOutcome.RECORDED, access.answer, access.response)
        self.log[key] = (access.subject_id, access.purpose, entry)
        return entry


class FakeFeatures:
    """Current scores as the feature service materializes them: ``scoring``'s
    score of the whole vector (without counting as a scoring call)."""

    def __init__(self, scoring):
        self.scoring = scoring
        self.calls = 0  # subjects whose current score was read
        self.vector_calls = 0  # subjects whose vector was read (sources changed)

    async def current_scores(self, subject_ids, timeout):
        self.calls += len(subject_ids)
        return [(await self.scoring.current(s), sources_used(_vector())) for s in subject_ids]

    async def feature_vectors(self, subject_ids, timeout):
        self.vector_calls += len(subject_ids)
        return [_vector() for _ in subject_ids]


class FakeScoring:
    def __init__(self, score=700, state=common_pb2.SCORE_STATE_SCORED):
        self.seen = None
        self.calls = 0
        self.result = (score, state)

    async def scores(self, items, timeout):
        return [await self.score(subject_id, features) for subject_id, features in items]

    async def score(self, subject_id, features):
        self.calls += 1
        self.seen = list(features)
        return self._make(subject_id)

    async def current(self, subject_id):
        """The materialized score: what scoring gave for the whole vector."""
        return self._make(subject_id)

    def _make(self, subject_id):
        score, state = self.result
        return scoring_pb2.Score(
            subject_id=subject_id, score=score if state == common_pb2.SCORE_STATE_SCORED else 0,
            state=state, band=common_pb2.SCORE_BAND_EXCELLENT, probability_of_bad=0.03,
            model_version="2.0.0", coverage=0.9, score_time=to_timestamp(utcnow()),
            reasons=[common_pb2.Reason(code="PAY_ONTIME_RATIO_12M", text="t", points_lost=12, feature="f")],
            improvements=[common_pb2.Improvement(feature="f", code="C", text="pay on time", points_gain=9)])


@pytest.fixture
def ports():
    scoring = FakeScoring()
    return {"consent": FakeConsent(), "features": FakeFeatures(scoring), "scoring": scoring}


def _score(ports, subject="s1", txn="t-1", purpose=LOAN, partner="p1", deadline=1.0):
    return answer_score(ScoreQuestion(subject, purpose, txn), partner, deadline=Deadline(deadline), **ports)


def _threshold(ports, threshold, subject="s1", txn="t-1", purpose=LOAN, partner="p1"):
    return answer_threshold(ThresholdQuestion(subject, purpose, txn, threshold), partner,
                            deadline=Deadline(1.0), **ports)


async def test_full_score_gives_score_band_reasons_and_nothing_for_the_subject_alone(ports):
    ports["consent"].authorize("s1")
    reply = await _score(ports)
    cs = reply.credit_score
    assert (cs.subject_id, cs.state, cs.score, cs.band) == (
        "s1", common_pb2.SCORE_STATE_SCORED, 700, common_pb2.SCORE_BAND_EXCELLENT)
    assert [r.code for r in cs.reasons] == ["PAY_ONTIME_RATIO_12M"] and cs.model_version == "2.0.0"
    assert reply.transaction_id == "t-1"
    # The subject's own advice and the model's internals are not the partner's.
    assert not cs.improvements and cs.probability_of_bad == 0 and cs.coverage == 0
    # The log holds what was answered and the answer as sent.
    (subject, purpose, entry), = ports["consent"].log.values()
    assert (subject, purpose) == ("s1", LOAN)
    assert entry.answer.score.score == 700 and list(entry.answer.score.reason_codes) == ["PAY_ONTIME_RATIO_12M"]
    assert entry.response == reply.SerializeToString(deterministic=True)


@pytest.mark.parametrize(("score", "state", "decision"), [
    (700, common_pb2.SCORE_STATE_SCORED, common_pb2.THRESHOLD_DECISION_MEETS),
    (650, common_pb2.SCORE_STATE_SCORED, common_pb2.THRESHOLD_DECISION_MEETS),
    (649, common_pb2.SCORE_STATE_SCORED, common_pb2.THRESHOLD_DECISION_BELOW),
    (0, common_pb2.SCORE_STATE_INSUFFICIENT_DATA, common_pb2.THRESHOLD_DECISION_INSUFFICIENT_DATA),
])
async def test_threshold_answers_yes_no_or_insufficient_data_and_nothing_else(ports, score, state, decision):
    ports["consent"].authorize("s1", scope=THRESHOLD)
    ports["scoring"].result = (score, state)
    reply = await _threshold(ports, 650)
    assert (reply.subject_id, reply.threshold, reply.decision, reply.transaction_id) == ("s1", 650, decision, "t-1")
    assert {f.name for f, _ in reply.ListFields()} <= {
        "subject_id", "threshold", "decision", "transaction_id", "decision_time"}
    (_, _, entry), = ports["consent"].log.values()
    assert (entry.answer.threshold.threshold, entry.answer.threshold.decision) == (650, decision)


async def test_a_full_score_authorization_covers_a_threshold(ports):
    ports["consent"].authorize("s1", scope=FULL)
    reply = await _threshold(ports, 600)
    assert reply.decision == common_pb2.THRESHOLD_DECISION_MEETS


async def _refusal(call) -> PermissionDenied:
    with pytest.raises(PermissionDenied) as info:
        await call
    return info.value


async def test_every_unauthorized_path_is_the_same_refusal_and_writes_nothing(ports):
    consent = ports["consent"]
    consent.authorize("threshold-only", scope=THRESHOLD)
    consent.authorize("other-partner", partner="p2")
    consent.authorize("other-purpose", purpose=RENTAL)
    consent.authorize("no-consent", sources=())
    refusals = [
        await _refusal(_score(ports, subject="never-enrolled")),
        await _refusal(_score(ports, subject="threshold-only")),
        await _refusal(_score(ports, subject="other-partner")),
        await _refusal(_score(ports, subject="other-purpose")),
        await _refusal(_score(ports, subject="no-consent")),
        await _refusal(_threshold(ports, 600, subject="never-enrolled")),
        await _refusal(_threshold(ports, 600, subject="no-consent")),
    ]
    assert {(e.code, e.reason, e.message, tuple(e.metadata.items())) for e in refusals} == {
        (PermissionDenied.code, "NOT_AUTHORIZED", NOT_AUTHORIZED_MESSAGE, ())}
    # Every path is the same path: the subject's current score was read, and
    # nothing was written or answered.
    assert ports["features"].calls == len(refusals)
    assert ports["scoring"].calls == ports["features"].vector_calls == 0
    assert consent.entries == 0


async def test_revocation_takes_effect_on_the_next_lookup_even_for_a_replay(ports):
    consent = ports["consent"]
    consent.authorize("s1")
    await _score(ports, txn="a")
    del consent.scopes[("s1", "p1", LOAN)]
    await _refusal(_score(ports, txn="b"))
    await _refusal(_score(ports, txn="a"))
    assert consent.entries == 1


async def test_a_transaction_id_is_answered_once(ports):
    consent = ports["consent"]
    consent.authorize("s1")
    first = await _score(ports, txn="t-9")
    ports["scoring"].result = (420, common_pb2.SCORE_STATE_SCORED)  # the score moved meanwhile
    again = await _score(ports, txn="t-9")
    assert again.SerializeToString() == first.SerializeToString()
    assert consent.entries == 1
    # The same id for another question of the same partner: refused, not answered.
    consent.authorize("s1", purpose=RENTAL)
    for call in (_threshold(ports, 600, txn="t-9"), _score(ports, txn="t-9", purpose=RENTAL)):
        with pytest.raises(InvalidArgument) as info:
            await call
        assert info.value.reason == "TRANSACTION_ID_REUSED"
    # Another partner's transaction ids are its own.
    consent.authorize("s1", partner="p2")
    other = await _score(ports, txn="t-9", partner="p2")
    assert other.credit_score.score == 420 and consent.entries == 2


async def test_a_threshold_replay_must_ask_the_same_threshold(ports):
    ports["consent"].authorize("s1", scope=THRESHOLD)
    first = await _threshold(ports, 600, txn="x")
    assert (await _threshold(ports, 600, txn="x")).SerializeToString() == first.SerializeToString()
    with pytest.raises(InvalidArgument) as info:
        await _threshold(ports, 700, txn="x")
    assert info.value.reason == "TRANSACTION_ID_REUSED"


async def test_no_answer_without_its_log_entry(ports):
    consent = ports["consent"]
    consent.authorize("s1")
    consent.fail_log = True
    with pytest.raises(Unavailable) as info:
        await _score(ports)
    assert info.value.reason == "ACCESS_LOG_UNAVAILABLE"
    # Revoked between the check and the write: the consent service refuses the
    # entry in the same transaction; the partner gets the one refusal.
    consent.fail_log = False
    consent.revoke_before_write = True
    refusal = await _refusal(_score(ports, txn="t-2"))
    assert (refusal.reason, refusal.message) == ("NOT_AUTHORIZED", NOT_AUTHORIZED_MESSAGE)
    assert consent.entries == 0


async def test_concurrent_calls_with_one_transaction_id_get_one_answer(ports):
    consent = ports["consent"]
    consent.authorize("s1")
    scores = iter([700, 710, 720, 730])

    class Moving(FakeScoring):
        async def current(self, subject_id):
            await asyncio.sleep(0)
            self.result = (next(scores), common_pb2.SCORE_STATE_SCORED)
            return await super().current(subject_id)

    ports["scoring"] = Moving()
    ports["features"] = FakeFeatures(ports["scoring"])
    replies = await asyncio.gather(*(_score(ports, txn="same") for _ in range(4)))
    assert len({r.SerializeToString() for r in replies}) == 1
    assert consent.entries == 1


async def test_questions_are_validated_before_anything_is_asked(ports):
    with pytest.raises(InvalidArgument) as info:
        await answer_threshold(ThresholdQuestion("bad id", 0, "", 200), "p1", deadline=Deadline(1.0), **ports)
    assert [v.field for v in info.value.violations] == ["subject_id", "purpose", "transaction_id", "threshold"]
    for txn in ("x" * 129, "tab\there", "caf\u00e9"):
        with pytest.raises(InvalidArgument) as info:
            await _score(ports, txn=txn)
        assert [v.field for v in info.value.violations] == ["transaction_id"]
    with pytest.raises(InvalidArgument):
        await _score(ports, purpose=99)
    assert ports["consent"].asked == [] and ports["features"].calls == 0


async def test_features_of_unconsented_sources_never_reach_the_answer(ports):
    consent = ports["consent"]
    consent.authorize("s1", sources=[common_pb2.DATA_SOURCE_PAYMENTS])
    await _score(ports)
    # The materialized score drew on everything; told that only payments is
    # granted, the lookup read the vector and scored it again without the rest;
    # only that answer was written.
    assert ports["scoring"].calls == 1 and ports["features"].vector_calls == 1 and consent.entries == 1
    first, second = consent.asked
    assert first.sources_used == frozenset(SCORED_SOURCES)
    assert second.sources_used == frozenset({common_pb2.DATA_SOURCE_PAYMENTS})
    for feature in ports["scoring"].seen:
        source = by_name(feature.name).source
        if source in (common_pb2.DATA_SOURCE_PAYMENTS, common_pb2.DATA_SOURCE_UNSPECIFIED):
            assert feature.HasField("value"), feature.name
        else:
            assert not feature.HasField("value"), feature.name


def test_mask_keeps_everything_with_every_source_granted():
    vector = _vector()
    assert mask_unconsented(vector, frozenset(SCORED_SOURCES)) == vector


def test_decide():
    scored = scoring_pb2.Score(state=common_pb2.SCORE_STATE_SCORED, score=600)
    assert decide(scored, 600) == common_pb2.THRESHOLD_DECISION_MEETS
    assert decide(scored, 601) == common_pb2.THRESHOLD_DECISION_BELOW
    assert decide(scoring_pb2.Score(state=common_pb2.SCORE_STATE_INSUFFICIENT_DATA), 350) == (
        common_pb2.THRESHOLD_DECISION_INSUFFICIENT_DATA)


async def test_each_call_gets_what_is_left_of_one_deadline(ports):
    ports["consent"].authorize("s1")
    await _score(ports, deadline=0.5)
    assert 0 < ports["consent"].deadlines[0] <= 0.5
    with pytest.raises(DeadlineExceeded):
        await _score(ports, txn="t-late", deadline=0.0)



async def test_consents_that_keep_changing_end_in_a_clear_abort_not_a_loop(ports):
    consent = ports["consent"]
    consent.authorize("s1")

    class Fickle(FakeConsent):
        def _one(self, access):
            self.asked.append(access)
            return Recorded(AccessOutcome.SOURCES_CHANGED, granted_sources=frozenset({common_pb2.DATA_SOURCE_PAYMENTS}))

    ports["consent"] = Fickle()
    with pytest.raises(Aborted) as info:
        await _score(ports)
    assert info.value.reason == "CONSENT_CHANGED"
    assert len(ports["consent"].asked) == MAX_ATTEMPTS


def test_sources_used_are_the_scored_sources_with_a_value():
    vector = _vector()
    assert sources_used(vector) == frozenset(SCORED_SOURCES)
    masked = mask_unconsented(vector, frozenset({common_pb2.DATA_SOURCE_IDENTITY}))
    assert sources_used(masked) == frozenset({common_pb2.DATA_SOURCE_IDENTITY})
    assert sources_used([common_pb2.FeatureValue(name=n) for n in FEATURE_NAMES]) == frozenset()


async def test_a_batch_of_lookups_makes_two_downstream_calls_and_answers_each_alone(ports):
    consent = ports["consent"]
    consent.authorize("full")
    consent.authorize("thr", scope=THRESHOLD)
    consent.authorize("payments-only", sources=[common_pb2.DATA_SOURCE_PAYMENTS])
    calls = {"scores": 0, "vectors": 0, "scoring": 0, "consent": 0}

    def counted(name, fn):
        async def call(*args):
            calls[name] += 1
            return await fn(*args)
        return call

    ports["features"].current_scores = counted("scores", ports["features"].current_scores)
    ports["features"].feature_vectors = counted("vectors", ports["features"].feature_vectors)
    ports["scoring"].scores = counted("scoring", ports["scoring"].scores)
    consent.record = counted("consent", consent.record)
    lookups = [
        Lookup(ScoreQuestion("full", LOAN, "t1"), "p1"),
        Lookup(ThresholdQuestion("thr", LOAN, "t2", 650), "p1"),
        Lookup(ScoreQuestion("thr", LOAN, "t3"), "p1"),          # threshold scope asking the score
        Lookup(ScoreQuestion("nobody", LOAN, "t4"), "p1"),
        Lookup(ScoreQuestion("bad id", LOAN, "t5"), "p1"),       # not valid
        Lookup(ScoreQuestion("payments-only", LOAN, "t6"), "p1"),  # scored again without the rest
    ]
    results = await answer_lookups(lookups, deadline=Deadline(1.0), **ports)
    assert isinstance(results[0], gateway_pb2.GetCreditScoreResponse) and results[0].credit_score.score == 700
    assert results[1].decision == common_pb2.THRESHOLD_DECISION_MEETS
    assert [type(r).__name__ for r in results[2:5]] == ["PermissionDenied", "PermissionDenied", "InvalidArgument"]
    assert results[2].message == results[3].message == NOT_AUTHORIZED_MESSAGE
    assert isinstance(results[5], gateway_pb2.GetCreditScoreResponse)
    # Two calls for the batch (current scores, consent); for the one whose
    # sources changed (and only for it), its vector, a score and consent again.
    assert calls == {"scores": 1, "vectors": 1, "scoring": 1, "consent": 2}
    assert ports["features"].vector_calls == ports["scoring"].calls == 1
    assert [a.transaction_id for a in consent.asked] == ["t1", "t2", "t3", "t4", "t6", "t6"]
    assert consent.entries == 3
