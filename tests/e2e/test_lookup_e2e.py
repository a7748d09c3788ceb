"""End to end: producers registered and authenticated, enroll, consent, ingest
through the ingest service, the outbox feeds the feature service, subjects
authorize a partner, and the partner's GetCreditScore through the gateway returns
a score in range with reasons, in one trace across the services."""

from __future__ import annotations

import grpc
import numpy as np
import pytest

from creditscore.catalog import CATALOG
from creditscore.common.v1 import common_pb2
from creditscore.demo import _pick_subjects, bearer, load_population, register_partner, wait_features
from creditscore.gateway.v1 import gateway_pb2, gateway_pb2_grpc
from creditscore.ingest.v1 import ingest_pb2, ingest_pb2_grpc
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
    assert {"gateway", "consent_service", "feature_service", "scoring_service"} <= services
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
    from feature_service.aggregates import point_in_time_matrix
    from scoring_service.training_source import fetch_training_records

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

