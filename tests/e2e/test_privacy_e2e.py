"""The subject's rights, end to end through the running suite (authentication
required): closing an account leaves no row of the subject in any table of any
service, read straight from the stores; withdrawing one source stops its
ingestion and purges its records, features and scores; the export holds every
part; the internal purge and export RPCs refuse every caller but services."""

from __future__ import annotations

import asyncio
import json
import time

import grpc
import pytest

from consent_service.store import metadata as consent_metadata
from creditscore.cli.run import bearer, load_population, register_partner, wait_features
from creditscore.common.v1 import common_pb2
from creditscore.consent.v1 import consent_pb2, consent_pb2_grpc
from creditscore.feature.v1 import feature_pb2, feature_pb2_grpc
from creditscore.features.catalog import features_of_source
from creditscore.gateway.v1 import gateway_pb2, gateway_pb2_grpc
from creditscore.ingest.v1 import ingest_pb2, ingest_pb2_grpc
from creditscore.runtime import CallError, make_engine, tool_channel
from creditscore.scoring.v1 import scoring_pb2, scoring_pb2_grpc
from feature_service.store import metadata as feature_metadata
from ingest_service.store import metadata as ingest_metadata
from scoring_service.store import metadata as scoring_metadata
from tests.holdings import rows_naming

CREDIT = common_pb2.ACCESS_PURPOSE_CREDIT_APPLICATION
RENTAL = common_pb2.ACCESS_PURPOSE_RENTAL
PAYMENTS = common_pb2.DATA_SOURCE_PAYMENTS
STORES = {
    "consent_service": consent_metadata,
    "ingest_service": ingest_metadata,
    "feature_service": feature_metadata,
    "scoring_service": scoring_metadata,
}
#: What the consent service keeps of a closed account: the deletion receipt.
# Deletion receipts, and for the longest token lifetime the entry revoking its tokens.
RECEIPTS = {"purge_jobs", "purge_steps", "revocations"}


async def held(urls: dict[str, str], subject_id: str) -> dict[str, int]:
    """Per service.table (every table of every store), the rows naming the subject."""
    found = {}
    for service, metadata in STORES.items():
        engine = make_engine(urls[service])
        try:
            skip = RECEIPTS if service == "consent_service" else set()
            for table, rows in (await rows_naming(engine, metadata, subject_id, skip=skip)).items():
                found[f"{service}.{table}"] = rows
        finally:
            await engine.dispose()
    return found


async def finished(consent: consent_pb2_grpc.ConsentServiceStub, receipt_id: str, subject_id: str,
                   timeout: float = 30) -> consent_pb2.DeletionReceipt:
    deadline = time.monotonic() + timeout
    while True:
        reply = await consent.GetDeletionReceipt(
            consent_pb2.GetDeletionReceiptRequest(receipt_id=receipt_id, subject_id=subject_id), timeout=5)
        if reply.receipt.complete or time.monotonic() > deadline:
            return reply.receipt
        await asyncio.sleep(0.05)


async def refused(call) -> CallError:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call
    return CallError.from_rpc_error(info.value)


def spread(population) -> list[str]:
    """Subjects with records from the most sources first."""
    return [s.subject_id for s in sorted(population.subjects, key=lambda s: -len(s.sources))]


async def test_the_subjects_rights_end_to_end(inprocess_suite) -> None:
    suite = inprocess_suite.suite
    urls = inprocess_suite.database_urls
    population, report = await load_population(suite, 12, seed=17, out=lambda *_: None)
    await wait_features(suite, population, report.accepted_for_features, timeout=60)
    subjects = spread(population)
    closing, withdrawing, exporting = subjects[0], subjects[1], subjects[2]
    partner = await register_partner(suite, subjects, out=lambda *_: None)

    gateway_ch = tool_channel(suite.addr("gateway"), partner.token)
    consent_ch = await suite.operator_channel("consent_service")
    try:
        gateway = gateway_pb2_grpc.CreditScoreServiceStub(gateway_ch)
        consent = consent_pb2_grpc.ConsentServiceStub(consent_ch)
        for sid in (closing, withdrawing, exporting):
            await gateway.GetCreditScore(gateway_pb2.GetCreditScoreRequest(
                subject_id=sid, purpose=CREDIT, transaction_id=f"score-{sid}"), timeout=10)
            await gateway.CheckCreditThreshold(gateway_pb2.CheckCreditThresholdRequest(
                subject_id=sid, purpose=RENTAL, threshold=600, transaction_id=f"rent-{sid}"), timeout=10)

        # --- export: one document with every part, each from the service that holds it
        reply = await consent.ExportSubjectData(
            consent_pb2.ExportSubjectDataRequest(subject_id=exporting), timeout=30)
        document = json.loads(reply.document)
        assert document["subject"]["subject_id"] == exporting
        mine = [r for r in population.records if r.subject_id == exporting]
        mine_outcomes = [r for r in population.outcomes if r.subject_id == exporting]
        assert len(document["records"]) == len(mine) + len(mine_outcomes)
        assert {r["record"]["subject_id"] for r in document["records"]} == {exporting}
        assert len(document["features"]["feature_vector"]["features"]) > 10
        assert len(document["features"]["applied_records"]) == len(mine)
        assert document["scores"] and all(s["score"]["subject_id"] == exporting for s in document["scores"])
        assert any(s["score"].get("reasons") for s in document["scores"])
        assert {c["source"] for c in document["consents"]} >= {"DATA_SOURCE_PAYMENTS", "DATA_SOURCE_COMMERCE"}
        assert {(a["purpose"], a["scope"]) for a in document["authorizations"]} == {
            ("ACCESS_PURPOSE_CREDIT_APPLICATION", "AUTHORIZATION_SCOPE_FULL_SCORE"),
            ("ACCESS_PURPOSE_RENTAL", "AUTHORIZATION_SCOPE_THRESHOLD")}
        assert sorted(e["transaction_id"] for e in document["access_log"]) == [
            f"rent-{exporting}", f"score-{exporting}"]
        assert all("response" not in e for e in document["access_log"])
        assert document["deletion_receipts"] == []

        # --- withdrawing one source: ingestion stops at once, its data is purged
        before = await held(urls, withdrawing)
        withdrawn = await consent.WithdrawConsent(consent_pb2.WithdrawConsentRequest(
            request_id="withdraw-payments", subject_id=withdrawing, source=PAYMENTS,
            purpose=common_pb2.PURPOSE_CREDIT_SCORING), timeout=10)
        assert withdrawn.receipt_id
        bill = next(r for r in population.records if r.subject_id == withdrawing and r.HasField("bill"))
        fresh = type(bill)()
        fresh.CopyFrom(bill)
        fresh.record_id = f"after-withdrawal-{withdrawing}"
        async with tool_channel(suite.addr("ingest_service"), suite.producer_token("wallet")) as ch:
            sent = await ingest_pb2_grpc.IngestServiceStub(ch).IngestRecords(ingest_pb2.IngestRecordsRequest(
                request_id="after-withdrawal", producer_id="wallet", records=[fresh]), timeout=10)
        assert [(r.status, r.reason) for r in sent.results] == [
            (ingest_pb2.RECORD_STATUS_REJECTED, "CONSENT_REQUIRED")]
        receipt = await finished(consent, withdrawn.receipt_id, withdrawing)
        assert receipt.complete and receipt.scope == consent_pb2.DELETION_SCOPE_SOURCE
        assert receipt.source == PAYMENTS
        assert [(s.service, s.pass_number) for s in receipt.steps] == [
            (svc, p) for p in (1, 2) for svc in ("ingest_service", "feature_service", "scoring_service")]
        async with await suite.operator_channel("ingest_service") as ch:
            page = await ingest_pb2_grpc.IngestServiceStub(ch).ExportSubject(
                ingest_pb2.ExportSubjectRequest(subject_id=withdrawing), timeout=10)
        kinds = {r.record.WhichOneof("body") for r in page.records}
        assert "bill" not in kinds and kinds  # the other sources stay
        deleted = sum(t.deleted_rows for s in receipt.steps if s.service == "ingest_service"
                      for t in s.tables if t.table == "records")
        assert deleted == sum(
            1 for r in population.records if r.subject_id == withdrawing and r.HasField("bill"))
        async with await suite.operator_channel("feature_service") as ch:
            vector = (await feature_pb2_grpc.FeatureServiceStub(ch).GetFeatureVector(
                feature_pb2.GetFeatureVectorRequest(subject_id=withdrawing), timeout=10)).feature_vector
        values = {f.name: f for f in vector.features}
        assert not any(values[name].HasField("value") for name in features_of_source(PAYMENTS))
        async with await suite.operator_channel("scoring_service") as ch:
            scores = await scoring_pb2_grpc.ScoringServiceStub(ch).ListScores(
                scoring_pb2.ListScoresRequest(subject_id=withdrawing), timeout=10)
        assert not any(f.HasField("value") and f.name in features_of_source(PAYMENTS)
                       for s in scores.scores for f in s.features)
        after = await held(urls, withdrawing)
        assert after["consent_service.subjects"] == before["consent_service.subjects"] == 1
        assert after["ingest_service.records"] < before["ingest_service.records"]

        # --- closing an account: nothing of the subject left anywhere but the receipt
        before = await held(urls, closing)
        assert all(before[t] > 0 for t in ("ingest_service.records", "feature_service.applied_records",
                                           "feature_service.subject_features", "scoring_service.score_history",
                                           "consent_service.access_log", "consent_service.authorizations",
                                           "consent_service.consents", "consent_service.subjects"))
        closed = await consent.CloseAccount(
            consent_pb2.CloseAccountRequest(request_id="close-1", subject_id=closing), timeout=10)
        receipt = await finished(consent, closed.receipt.receipt_id, closing)
        assert receipt.complete and receipt.scope == consent_pb2.DELETION_SCOPE_ACCOUNT
        after = await held(urls, closing)
        assert set(after) == set(before) and set(after.values()) == {0}, after
        counted: dict[str, int] = {}
        for step in receipt.steps:
            for table in step.tables:
                key = f"{step.service}.{table.table}"
                counted[key] = counted.get(key, 0) + table.deleted_rows
        for key in ("ingest_service.records", "feature_service.applied_records",
                    "scoring_service.score_history", "consent_service.access_log",
                    "consent_service.consents", "consent_service.subjects"):
            assert counted[key] == before[key], key
        assert receipt.deleted_rows == sum(counted.values())
        again = await consent.CloseAccount(
            consent_pb2.CloseAccountRequest(request_id="close-1", subject_id=closing), timeout=10)
        assert again.receipt.receipt_id == receipt.receipt_id

        # The partner now learns exactly what it learns of someone who never existed.
        gone = await refused(gateway.GetCreditScore(gateway_pb2.GetCreditScoreRequest(
            subject_id=closing, purpose=CREDIT, transaction_id="after-close"), timeout=10))
        never = await refused(gateway.GetCreditScore(gateway_pb2.GetCreditScoreRequest(
            subject_id="never-enrolled", purpose=CREDIT, transaction_id="nobody"), timeout=10))
        assert (gone.code, gone.message, gone.reason) == (never.code, never.message, never.reason)
    finally:
        await gateway_ch.close()
        await consent_ch.close()


async def test_the_internal_purge_and_export_refuse_every_caller_but_services(inprocess_suite) -> None:
    suite = inprocess_suite.suite
    population, _ = await load_population(suite, 3, seed=5, out=lambda *_: None)
    sid = population.subjects[0].subject_id
    partner = await register_partner(suite, [sid], out=lambda *_: None)
    purge = dict(request_id="attack-1", subject_id=sid)
    wrong_audience = (grpc.StatusCode.UNAUTHENTICATED, "TOKEN_WRONG_AUDIENCE")
    cases = {
        # service: [(token, expected refusal)]
        service: [
            (None, (grpc.StatusCode.UNAUTHENTICATED, "TOKEN_MISSING")),
            # A producer's token is for the ingest service, where only ingesting is its to call.
            (suite.producer_token("wallet"), (grpc.StatusCode.PERMISSION_DENIED, "METHOD_NOT_ALLOWED")
             if service == "ingest_service" else wrong_audience),
            (partner.token, wrong_audience),
        ]
        for service in ("ingest_service", "feature_service", "scoring_service")
    }
    stubs = {
        "ingest_service": (ingest_pb2_grpc.IngestServiceStub, ingest_pb2),
        "feature_service": (feature_pb2_grpc.FeatureServiceStub, feature_pb2),
        "scoring_service": (scoring_pb2_grpc.ScoringServiceStub, scoring_pb2),
    }
    for service, (stub_type, module) in stubs.items():
        channel = tool_channel(suite.addr(service))
        try:
            stub = stub_type(channel)
            for token, expected in cases[service]:
                metadata = bearer(token) if token else ()
                for call in (stub.PurgeSubject(module.PurgeSubjectRequest(**purge), metadata=metadata, timeout=10),
                             stub.ExportSubject(module.ExportSubjectRequest(subject_id=sid),
                                                metadata=metadata, timeout=10)):
                    error = await refused(call)
                    assert (error.code, error.reason) == expected, (service, token is None)
        finally:
            await channel.close()
    # Nothing was deleted by any of those calls.
    async with await suite.operator_channel("ingest_service") as ch:
        page = await ingest_pb2_grpc.IngestServiceStub(ch).ExportSubject(
            ingest_pb2.ExportSubjectRequest(subject_id=sid), timeout=10)
    assert len(page.records) == sum(1 for r in (*population.records, *population.outcomes) if r.subject_id == sid)
    # Nor may a partner or a producer reach the consent service's subject-facing RPCs.
    async with tool_channel(suite.addr("consent_service"), suite.producer_token("wallet")) as ch:
        error = await refused(consent_pb2_grpc.ConsentServiceStub(ch).CloseAccount(
            consent_pb2.CloseAccountRequest(request_id="attack-2", subject_id=sid), timeout=10))
    assert (error.code, error.reason) == (grpc.StatusCode.UNAUTHENTICATED, "TOKEN_WRONG_AUDIENCE")
