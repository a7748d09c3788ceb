"""What hostile requests found in the shared runtime (``python -m bench.hostile``):
a request that does not parse, a refused client stream of a few megabytes, and a
Timestamp outside what one may hold each get a clear status, never UNKNOWN or
INTERNAL."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from creditscore.consent.v1 import consent_pb2, consent_pb2_grpc
from creditscore.ingest.v1 import ingest_pb2, ingest_pb2_grpc
from creditscore.runtime import (
    CallError,
    InvalidArgument,
    RegisteredService,
    ServerSettings,
    Unauthenticated,
    create_server,
    from_timestamp,
)
from creditscore.scoring.v1 import scoring_pb2

#: An unknown field (number 1000) of 200 nested groups: past the parser's depth limit.
NESTED = bytes([0xC3, 0x3E]) * 200 + bytes([0xC4, 0x3E]) * 200


class _Consent(consent_pb2_grpc.ConsentServiceServicer):
    async def GetSubject(self, request, context):
        return consent_pb2.GetSubjectResponse(subject=consent_pb2.Subject(subject_id=request.subject_id))


class _Ingest(ingest_pb2_grpc.IngestServiceServicer):
    """Reads the stream (metadata ``read``), or refuses it before reading it, as
    the authentication does."""

    async def IngestRecordStream(self, request_iterator, context):
        if ("mode", "read") in tuple(context.invocation_metadata() or ()):
            count = 0
            async for _ in request_iterator:
                count += 1
            return ingest_pb2.IngestRecordStreamResponse(accepted_count=count)
        raise Unauthenticated("no token", reason="TOKEN_MISSING")


@pytest.fixture
async def channel() -> AsyncIterator[grpc.aio.Channel]:
    handle = create_server(
        [RegisteredService(consent_pb2.DESCRIPTOR.services_by_name["ConsentService"],
                           consent_pb2_grpc.add_ConsentServiceServicer_to_server, _Consent()),
         RegisteredService(ingest_pb2.DESCRIPTOR.services_by_name["IngestService"],
                           ingest_pb2_grpc.add_IngestServiceServicer_to_server, _Ingest())],
        ServerSettings(host="127.0.0.1", port=0),
        domain="test.creditscore",
    )
    await handle.start()
    ch = grpc.aio.insecure_channel(f"127.0.0.1:{handle.port}", options=[("grpc.max_send_message_length", -1)])
    try:
        yield ch
    finally:
        await ch.close()
        await handle.stop(0)


def _raw(data: bytes) -> bytes:
    return data


async def _error(call) -> CallError:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call
    return CallError.from_rpc_error(info.value)


@pytest.mark.parametrize("payload", [NESTED, b"\x0a\xff\xff\xff\xff\x0f", b"\x0a\x02\xc3\x28"],
                         ids=["nested-groups", "truncated", "invalid-utf8"])
async def test_a_request_that_does_not_parse_is_invalid_argument_not_unknown(channel, payload) -> None:
    call = channel.unary_unary("/creditscore.consent.v1.ConsentService/GetSubject",
                               request_serializer=_raw, response_deserializer=consent_pb2.GetSubjectResponse.FromString)
    err = await _error(call(payload, timeout=5))
    assert (err.code, err.reason, err.domain) == (grpc.StatusCode.INVALID_ARGUMENT, "MALFORMED_REQUEST",
                                                  "test.creditscore")
    # The same server still answers a good request.
    reply = await call(consent_pb2.GetSubjectRequest(subject_id="s1").SerializeToString(), timeout=5)
    assert reply.subject.subject_id == "s1"


async def test_a_malformed_message_in_a_client_stream_is_invalid_argument(channel) -> None:
    call = channel.stream_unary("/creditscore.ingest.v1.IngestService/IngestRecordStream",
                                request_serializer=_raw,
                                response_deserializer=ingest_pb2.IngestRecordStreamResponse.FromString)

    async def requests() -> AsyncIterator[bytes]:
        yield ingest_pb2.IngestRecordStreamRequest(request_id="r").SerializeToString()
        yield NESTED

    err = await _error(call(requests(), timeout=5, metadata=(("mode", "read"),)))
    assert (err.code, err.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "MALFORMED_REQUEST")


async def test_a_client_stream_refused_before_it_is_read_gets_its_status_not_internal(channel) -> None:
    """A server that answers while the client is still sending megabytes made
    grpc's client report INTERNAL ("Internal error from Core") about half the
    time: the refused stream is read to its end (bounded) before the status."""
    call = channel.stream_unary("/creditscore.ingest.v1.IngestService/IngestRecordStream",
                                request_serializer=_raw,
                                response_deserializer=ingest_pb2.IngestRecordStreamResponse.FromString)
    chunk = ingest_pb2.IngestRecordStreamRequest(request_id="r", producer_id="p" * (2 << 20)).SerializeToString()

    async def requests() -> AsyncIterator[bytes]:
        for _ in range(4):
            yield chunk

    for _ in range(12):
        err = await _error(call(requests(), timeout=10))
        assert (err.code, err.reason) == (grpc.StatusCode.UNAUTHENTICATED, "TOKEN_MISSING")


@pytest.mark.parametrize("seconds,nanos", [
    (-(2**62), 0), (2**62, 0), (-62135596801, 0), (253402300800, 0), (0, -1), (0, 10**9), (0, 2**31 - 1),
])
def test_a_timestamp_out_of_range_is_invalid_argument_naming_the_field(seconds, nanos) -> None:
    request = scoring_pb2.GetDriftRequest(since_time=Timestamp(seconds=seconds, nanos=nanos))
    with pytest.raises(InvalidArgument) as info:
        from_timestamp(request, "since_time")
    assert [v.field for v in info.value.violations] == ["since_time"]


def test_timestamps_at_the_edges_of_the_range_convert() -> None:
    first = scoring_pb2.GetDriftRequest(since_time=Timestamp(seconds=-62135596800, nanos=0))
    last = scoring_pb2.GetDriftRequest(since_time=Timestamp(seconds=253402300799, nanos=999_999_999))
    assert from_timestamp(first, "since_time").year == 1  # type: ignore[union-attr]
    assert from_timestamp(last, "since_time").year == 9999  # type: ignore[union-attr]
    assert from_timestamp(scoring_pb2.GetDriftRequest(), "since_time") is None
