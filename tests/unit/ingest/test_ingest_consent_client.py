"""The ingest service's consent check over gRPC: what each failure of the consent
service becomes (against a server that answers every call with one status)."""

from __future__ import annotations

import grpc
import pytest

from creditscore.common.v1 import common_pb2
from creditscore.consent.v1 import consent_pb2_grpc
from creditscore.runtime import DomainError, Unavailable, direct_channel
from ingest_service.clients import GrpcConsentChecker
from tests.faultproxy import ErrorServer


@pytest.mark.parametrize("code, status", [
    (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.UNAVAILABLE),
    # The consent service failing itself: the producer retries later, as for a
    # consent service down (it was INTERNAL, the ingest service's own status).
    (grpc.StatusCode.INTERNAL, grpc.StatusCode.UNAVAILABLE),
    (grpc.StatusCode.UNKNOWN, grpc.StatusCode.UNAVAILABLE),
    # The request refused: the ingest service's bug or configuration.
    (grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.INTERNAL),
])
async def test_each_consent_service_failure_becomes_the_status_its_cause_calls_for(code, status):
    server = await ErrorServer.start(code)
    channel = direct_channel(f"127.0.0.1:{server.port}")
    try:
        checker = GrpcConsentChecker(consent_pb2_grpc.ConsentServiceStub(channel))
        with pytest.raises(DomainError) as caught:
            await checker.check(common_pb2.PURPOSE_CREDIT_SCORING, [("s1", common_pb2.DATA_SOURCE_PAYMENTS)], 2.0)
    finally:
        await channel.close()
        await server.close()
    assert caught.value.code == status
    assert caught.value.reason == (
        "CONSENT_SERVICE_UNAVAILABLE" if code == grpc.StatusCode.UNAVAILABLE else "CONSENT_CHECK_FAILED")
    assert caught.value.metadata["consent_code"] == code.name
    assert isinstance(caught.value, Unavailable) == (status == grpc.StatusCode.UNAVAILABLE)
