"""End to end: producers registered and authenticated, enroll, consent, ingest
through the ingest service, the outbox feeds the feature service, subjects
authorize a partner, and the partner's GetCreditScore through the gateway returns
a score in range with reasons, in one trace across the services."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import grpc
import numpy as np
import pytest

from creditscore.cli.run import _pick_subjects, bearer, load_population, register_partner, wait_features
from creditscore.common.v1 import common_pb2
from creditscore.features.catalog import CATALOG
from creditscore.gateway.v1 import gateway_pb2, gateway_pb2_grpc
from creditscore.ingest.v1 import ingest_pb2, ingest_pb2_grpc
from creditscore.records.v1 import records_pb2
from creditscore.runtime import CallError, tool_channel
from creditscore.scoring.v1 import scoring_pb2, scoring_pb2_grpc

BANDS = [(350, 549, common_pb2.SCORE_BAND_POOR), (550, 599, common_pb2.SCORE_BAND_FAIR),
         (600, 649, common_pb2.SCORE_BAND_GOOD), (650, 699, common_pb2.SCORE_BAND_VERY_GOOD),
         (700, 950, common_pb2.SCORE_BAND_EXCELLENT)]


async def test_score_lookup_end_to_end(inprocess_suite):
    suite = inprocess_suite.suite
    population, report = await load_population(suite, 60, seed=11, out=lambda *_: None)
    assert report.statuses["RECORD_STATUS_ACCEPTED"] > 0
    # Every 5th subject with external records withheld consent for them: refused.
    assert report.reasons.get("CONSENT_REQUIRED", 0) > 0
    assert set(report.reasons) <= {"CONSENT_REQUIRED"}
    # The same records sent again under a new request id are stored once.
    assert report.resent_statuses == {"RECORD_STATUS_DUPLICATE": report.resent}
    applied = await wait_features(suite, population, report.accepted_for_features, timeout=60)
    assert applied == report.accepted_for_features

    partner = await register_partner(suite, [s.subject_id for s in population.subjects], out=lambda *_: None)
    inprocess_suite.exporter.clear()
    channel = tool_channel(suite.addr("gateway"), partner.token)
    try:
        stub = gateway_pb2_grpc.CreditScoreServiceStub(channel)
        scored = []
        for sid in _pick_subjects(population, k=5):
            reply = await stub.GetCreditScore(gateway_pb2.GetCreditScoreRequest(
                subject_id=sid, purpose=common_pb2.ACCESS_PURPOSE_CREDIT_APPLICATION,
                transaction_id=f"e2e-{sid}"), timeout=5)
            cs = reply.credit_score
            assert cs.subject_id == sid and cs.model_version
            if cs.state == common_pb2.SCORE_STATE_SCORED:
                scored.append(cs)
                assert 350 <= cs.score <= 950
                assert [b for lo, hi, b in BANDS if lo <= cs.score <= hi] == [cs.band]
                assert len(cs.reasons) <= 4
        assert scored, "no subject of the spread got a score"
        assert any(cs.reasons for cs in scored)
        # How to improve is the subject's, never the partner's: the scoring service
        # gave and stored it, for actionable features only.
        assert not any(cs.improvements or cs.probability_of_bad for cs in scored)
        actionable = {f.name for f in CATALOG if f.actionable}
        improved = []
        async with await suite.operator_channel("scoring_service") as scoring_channel:
            for cs in scored:
                history = await scoring_pb2_grpc.ScoringServiceStub(scoring_channel).ListScores(
                    scoring_pb2.ListScoresRequest(subject_id=cs.subject_id, page_size=1), timeout=5)
                stored = history.scores[0].score
                assert (stored.score, list(stored.reasons)) == (cs.score, list(cs.reasons))
                improved += list(stored.improvements)
        assert improved, "no scored subject of the spread was told how to improve"
        assert {i.feature for i in improved} <= actionable
        assert all(i.points_gain > 0 and i.text and i.HasField("target_value") for i in improved)

        with pytest.raises(grpc.aio.AioRpcError) as info:
            await stub.GetCreditScore(gateway_pb2.GetCreditScoreRequest(
                subject_id="never-enrolled", purpose=common_pb2.ACCESS_PURPOSE_CREDIT_APPLICATION,
                transaction_id="e2e-nobody"), timeout=5)
        err = CallError.from_rpc_error(info.value)
        assert (err.code, err.reason) == (grpc.StatusCode.PERMISSION_DENIED, "NOT_AUTHORIZED")
    finally:
        await channel.close()

    spans = inprocess_suite.exporter.get_finished_spans()
    lookups = [s for s in spans if s.name.endswith("CreditScoreService/GetCreditScore")
               and s.kind.name == "SERVER"]
    assert lookups
    trace_id = lookups[0].context.trace_id
    in_trace = [s for s in spans if s.context.trace_id == trace_id]
    services = {s.resource.attributes["service.name"] for s in in_trace}
    # The subject's current score is the feature service's (materialized when
    # its records were applied): the scoring service is on the lookup's path only
    # for a score out of date.
    assert {"gateway", "consent_service", "feature_service"} <= services
    # Every span of the lookup hangs off its root: one trace, not four.
    root = lookups[0]
    assert all(s.parent is not None for s in in_trace if s is not root)
    assert sum(1 for s in in_trace if s.parent is None) == 1


async def test_ingest_stores_a_record_once(inprocess_suite):
    suite = inprocess_suite.suite
    population, report = await load_population(suite, 10, seed=3, out=lambda *_: None)
    channel = await suite.operator_channel("ingest_service")
    try:
        stub = ingest_pb2_grpc.IngestServiceStub(channel)
        sid = population.subjects[0].subject_id

        async def count() -> int:
            n, token = 0, ""
            while True:
                page = await stub.ListRecords(ingest_pb2.ListRecordsRequest(
                    subject_id=sid, page_size=50, page_token=token), timeout=5)
                n += len(page.records)
                token = page.next_page_token
                if not token:
                    return n

        before = await count()
        mine = [r for records in population.by_producer().values() for r in records if r.subject_id == sid]
        assert before > 0 and mine
        producer = next(p for p, records in population.by_producer().items() if mine[0] in records)
        token = suite.producer_token(producer)
        reply = await stub.IngestRecords(ingest_pb2.IngestRecordsRequest(
            request_id="again-1", producer_id=producer, records=[mine[0], mine[0]]),
            metadata=bearer(token), timeout=5)
        assert [r.status for r in reply.results] == [ingest_pb2.RECORD_STATUS_DUPLICATE] * 2
        assert await count() == before
    finally:
        await channel.close()


async def test_training_data_comes_from_the_ingested_records(inprocess_suite):
    """The trainer's input built from the running suite: ingest's export (model
    development consent only) and the feature service's point-in-time engine."""
    from creditscore.cli.training_source import fetch_training_records
    from creditscore.features.engine import point_in_time_matrix

    suite = inprocess_suite.suite
    population, report = await load_population(suite, 40, seed=21, out=lambda *_: None)
    data = await fetch_training_records(suite.addr("ingest_service"), token=await suite.operator_token())
    assert len(data.outcomes) == len(population.outcomes)
    # Records refused at ingest (no consent) are not there to export.
    assert len(data.records) == report.accepted_for_features
    matrix = point_in_time_matrix(data.records, data.outcomes)
    direct = point_in_time_matrix(
        [r for r in population.records
         if (r.subject_id, r.WhichOneof("body")) not in _withheld(population, report)],
        population.outcomes)
    # The same rows, whatever order the export streamed them in.
    order_a = np.argsort(np.array(matrix.subject_ids))
    order_b = np.argsort(np.array(direct.subject_ids))
    assert [matrix.subject_ids[i] for i in order_a] == [direct.subject_ids[i] for i in order_b]
    assert matrix.y[order_a].tolist() == direct.y[order_b].tolist()
    assert np.array_equal(matrix.X[order_a], direct.X[order_b], equal_nan=True)


def _withheld(population, report) -> set:
    """(subject, body) pairs the demo's consent pattern refused: external records of
    every 5th subject that has any."""
    from creditscore.common.v1 import common_pb2 as c

    with_external = [s.subject_id for s in population.subjects if c.DATA_SOURCE_EXTERNAL in s.sources]
    return {(sid, "external") for sid in with_external[::5]}



async def test_a_lookup_answers_what_scoring_the_current_vector_gives(inprocess_suite):
    """The score a lookup reads (materialized by the feature service when records
    were applied) is, for every subject, the one the scoring service gives for the
    subject's vector now; after more records are applied, the next lookup shows them."""
    from creditscore.feature.v1 import feature_pb2, feature_pb2_grpc

    suite = inprocess_suite.suite
    population, report = await load_population(suite, 30, seed=5, out=lambda *_: None)
    await wait_features(suite, population, report.accepted_for_features, timeout=60)
    ids = [s.subject_id for s in population.subjects]
    partner = await register_partner(suite, ids, out=lambda *_: None)
    channel = tool_channel(suite.addr("gateway"), partner.token)
    features = await suite.operator_channel("feature_service")
    scoring = await suite.operator_channel("scoring_service")
    stub = gateway_pb2_grpc.CreditScoreServiceStub(channel)

    async def fresh(sid: str) -> scoring_pb2.Score:
        vector = (await feature_pb2_grpc.FeatureServiceStub(features).GetFeatureVector(
            feature_pb2.GetFeatureVectorRequest(subject_id=sid), timeout=5)).feature_vector
        return (await scoring_pb2_grpc.ScoringServiceStub(scoring).ScoreFeatures(
            scoring_pb2.ScoreFeaturesRequest(subject_id=sid, features=vector.features), timeout=5)).score

    async def looked_up(sid: str, txn: str) -> gateway_pb2.CreditScore:
        return (await stub.GetCreditScore(gateway_pb2.GetCreditScoreRequest(
            subject_id=sid, purpose=common_pb2.ACCESS_PURPOSE_CREDIT_APPLICATION,
            transaction_id=txn), timeout=5)).credit_score

    def same(cs: gateway_pb2.CreditScore, score: scoring_pb2.Score) -> bool:
        return (cs.state, cs.score, cs.band, list(cs.reasons), cs.model_version) == (
            score.state, score.score, score.band, list(score.reasons), score.model_version)

    try:
        states = set()
        for sid in ids:
            cs = await looked_up(sid, f"fresh-{sid}")
            assert same(cs, await fresh(sid)), sid
            states.add(cs.state)
        assert common_pb2.SCORE_STATE_SCORED in states

        # Ten late bills for a subject whose payments are consented: applied, and
        # the next lookup shows them.
        now = datetime.now(UTC).replace(microsecond=0)

        def late_bills(sid: str) -> list[records_pb2.Record]:
            records = []
            for k in range(10):
                due = now - timedelta(days=20 + 3 * k)
                record = records_pb2.Record(record_id=f"late-{sid}-{k}", subject_id=sid)
                record.event_time.FromDatetime(due + timedelta(days=15))
                bill = record.bill
                bill.category = records_pb2.BILL_CATEGORY_UTILITY
                bill.amount_due.currency_code = bill.amount_paid.currency_code = "USD"
                bill.amount_due.minor_units = bill.amount_paid.minor_units = 9_000
                bill.issue_time.FromDatetime(due - timedelta(days=14))
                bill.due_time.FromDatetime(due)
                bill.paid_time.FromDatetime(due + timedelta(days=15))
                records.append(record)
            return records

        ingest = tool_channel(suite.addr("ingest_service"), suite.producer_token("wallet"))
        try:
            for sid in ids:
                before = await looked_up(sid, f"before-more-{sid}")
                reply = await ingest_pb2_grpc.IngestServiceStub(ingest).IngestRecords(ingest_pb2.IngestRecordsRequest(
                    request_id=f"e2e-late-bills-{sid}", producer_id="wallet", records=late_bills(sid)), timeout=10)
                if all(r.status == ingest_pb2.RECORD_STATUS_ACCEPTED for r in reply.results):
                    break
            else:
                pytest.fail("no subject of the population consented its payments to scoring")
        finally:
            await ingest.close()
        deadline = asyncio.get_running_loop().time() + 30
        while True:
            after = await looked_up(sid, f"after-more-{asyncio.get_running_loop().time()}")
            if (after.state, after.score, list(after.reasons)) != (before.state, before.score, list(before.reasons)):
                break
            assert asyncio.get_running_loop().time() < deadline, "the late bills never reached a lookup"
            await asyncio.sleep(0.2)
        assert same(after, await fresh(sid))
    finally:
        await channel.close()
        await features.close()
        await scoring.close()
