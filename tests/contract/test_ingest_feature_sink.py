"""The ingest service's delivery adapter (``GrpcFeatureSink``) against a real
in-process grpc.aio FeatureService: a delivery is acknowledged only when the reply
accounts for every record sent, applied or duplicate."""

from __future__ import annotations

import pytest

from creditscore.feature.v1 import feature_pb2, feature_pb2_grpc
from creditscore.records.v1 import records_pb2
from creditscore.runtime import RegisteredService, ServerSettings, create_channel, create_server
from ingest_service.clients import DeliveryError, GrpcFeatureSink
from ingest_service.store import OutboxItem


class Answers(feature_pb2_grpc.FeatureServiceServicer):
    """Answers ApplyRecords with the counts it is told to (None: the honest ones)."""

    def __init__(self) -> None:
        self.counts: tuple[int, int] | None = None
        self.requests: list[feature_pb2.ApplyRecordsRequest] = []

    async def ApplyRecords(self, request, context):
        self.requests.append(request)
        applied, duplicates = self.counts or (len(request.records) - 1, 1)
        return feature_pb2.ApplyRecordsResponse(applied_count=applied, duplicate_count=duplicates)


@pytest.fixture
async def sink_and_answers():
    answers = Answers()
    server = create_server(
        [RegisteredService(feature_pb2.DESCRIPTOR.services_by_name["FeatureService"],
                           feature_pb2_grpc.add_FeatureServiceServicer_to_server, answers)],
        ServerSettings(host="127.0.0.1", port=0), domain="feature.creditscore")
    await server.start()
    channel = create_channel(f"127.0.0.1:{server.port}")
    try:
        yield GrpcFeatureSink(feature_pb2_grpc.FeatureServiceStub(channel)), answers
    finally:
        await channel.close()
        await server.stop(0)


def items(n: int) -> list[OutboxItem]:
    return [
        OutboxItem(7, "wallet", f"r{i}", 0,
                   records_pb2.Record(record_id=f"r{i}", subject_id="s1").SerializeToString(deterministic=True))
        for i in range(n)
    ]


async def test_a_reply_accounting_for_every_record_acknowledges_the_delivery(sink_and_answers):
    sink, answers = sink_and_answers
    await sink.apply("outbox-7-7", items(3), timeout=5)
    [request] = answers.requests
    assert request.request_id == "outbox-7-7"
    assert [(e.producer_id, e.record.record_id) for e in request.records] == [("wallet", f"r{i}") for i in range(3)]


@pytest.mark.parametrize("counts", [(2, 0), (0, 0), (3, 1)])
async def test_a_reply_that_does_not_account_for_every_record_is_a_failed_delivery(sink_and_answers, counts):
    sink, answers = sink_and_answers
    answers.counts = counts
    with pytest.raises(DeliveryError, match=f"answered for {sum(counts)} of 3 records"):
        await sink.apply("outbox-7-7", items(3), timeout=5)
