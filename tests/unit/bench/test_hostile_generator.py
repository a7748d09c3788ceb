"""The hostile request generator (``bench._hostile``): every RPC from the
descriptors, requests that are valid on the wire, the probes' shapes."""

from __future__ import annotations

import random

from bench._hostile import Generator, Pools, every_rpc, message_class, oversized_request, recursive_types, wide_request
from creditscore.ingest.v1 import ingest_pb2


def test_every_method_of_every_service_is_enumerated_from_the_descriptors() -> None:
    rpcs = every_rpc()
    paths = {r.path for r in rpcs}
    assert len(paths) == len(rpcs)
    assert "/creditscore.ingest.v1.IngestService/IngestRecordStream" in paths
    assert "/creditscore.gateway.v1.TokenService/IssueToken" in paths
    assert {r.package for r in rpcs} == {"consent_service", "ingest_service", "feature_service", "scoring_service",
                                         "gateway"}
    streams = {r.short for r in rpcs if r.client_streaming or r.server_streaming}
    assert streams == {"IngestService/IngestRecordStream", "IngestService/ExportTrainingRecords"}
    assert recursive_types(rpcs) == []  # no request type can contain itself (today)


def test_generated_requests_are_valid_on_the_wire_and_deterministic_by_seed() -> None:
    pools = Pools(subjects=["sim-000001", "sim-000002"], partners=["demo-lender"], producers=["wallet"])
    rpcs = every_rpc()
    first = [Generator(random.Random(5), pools, huge=4096).request(r.input) for r in rpcs for _ in range(20)]
    again = [Generator(random.Random(5), pools, huge=4096).request(r.input) for r in rpcs for _ in range(20)]
    assert [len(b) for b in first] == [len(b) for b in again]
    gen = Generator(random.Random(6), pools, huge=4096)
    for rpc in rpcs:
        for _ in range(30):
            message_class(rpc.input).FromString(gen.request(rpc.input))  # parses: hostile in content only


def test_mutation_changes_a_valid_request_and_leaves_the_original() -> None:
    seed = ingest_pb2.IngestRecordsRequest(request_id="r1", producer_id="wallet")
    seed.records.add(record_id="b1", subject_id="sim-000001")
    gen = Generator(random.Random(1))
    mutated = [gen.mutate(seed) for _ in range(50)]
    assert seed.request_id == "r1" and len(seed.records) == 1
    assert any(m != seed for m in mutated)


def test_probes_oversized_and_ten_thousand_items() -> None:
    d = ingest_pb2.IngestRecordsRequest.DESCRIPTOR
    big = oversized_request(d, 1 << 20)
    assert big is not None and len(big) > 1 << 20
    wide = dict(wide_request(Generator(random.Random(2)), d, 10_000))
    assert set(wide) == {"records"}
    assert len(ingest_pb2.IngestRecordsRequest.FromString(wide["records"]).records) == 10_000
