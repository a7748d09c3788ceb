"""The whole suite behind mutual TLS, certificates made in the test: every service
talks to the others with its own certificate (naming it, SPIFFE URI SAN); a
partner with a certificate of the CA gets its answer; a client without a
certificate, or with one of another CA, is refused; a service's token presented
from a certificate that is not a service's is refused."""

from __future__ import annotations

import grpc
import pytest

from creditscore.cli.run import bearer, load_population, register_partner, wait_features
from creditscore.common.v1 import common_pb2
from creditscore.feature.v1 import feature_pb2, feature_pb2_grpc
from creditscore.gateway.v1 import gateway_pb2, gateway_pb2_grpc
from creditscore.runtime import CallError, ChannelSettings, create_channel
from tests.authkit import Ca

FEW_RETRIES = ChannelSettings(retry_max_attempts=2, retry_initial_backoff_seconds=0.01)


async def test_the_suite_over_mutual_tls(mtls_suite, tmp_path):
    running, ca = mtls_suite
    suite = running.suite
    # Enrolling, ingesting (ingest -> consent, ingest -> feature) and the features'
    # wait all go over mutual TLS, with tokens.
    population, report = await load_population(suite, 8, seed=41, out=lambda *_: None)
    assert report.statuses["RECORD_STATUS_ACCEPTED"] > 0
    await wait_features(suite, population, report.accepted_for_features, timeout=60)
    ids = [s.subject_id for s in population.subjects]
    partner = await register_partner(suite, ids, out=lambda *_: None)
    request = gateway_pb2.GetCreditScoreRequest(
        subject_id=ids[0], purpose=common_pb2.ACCESS_PURPOSE_CREDIT_APPLICATION, transaction_id="tls-1")
    gateway = suite.addr("gateway")

    # A partner with a certificate of the CA (not a service's): answered, the
    # gateway calling consent, features and scoring over mutual TLS.
    async with create_channel(gateway, FEW_RETRIES, tls=ca.issue("partner-1", service=False)) as channel:
        reply = await gateway_pb2_grpc.CreditScoreServiceStub(channel).GetCreditScore(
            request, metadata=bearer(partner.token), timeout=10)
        assert reply.credit_score.subject_id == ids[0] and reply.credit_score.model_version

    # No certificate (plaintext), and a certificate of another CA: refused before any call.
    other = Ca(tmp_path / "other", name="other-ca")
    for tls in (None, other.issue("partner-1", service=False, ca_file=ca.ca_file)):
        async with create_channel(gateway, FEW_RETRIES, tls=tls) as channel:
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await gateway_pb2_grpc.CreditScoreServiceStub(channel).GetCreditScore(
                    request, metadata=bearer(partner.token), timeout=5)
            assert info.value.code() == grpc.StatusCode.UNAVAILABLE

    # A service's token (stolen) presented with a partner's certificate: the
    # internal RPC wants a service's certificate too.
    service_token = bearer(await suite.operator_token())
    feature_request = feature_pb2.GetFeatureVectorRequest(subject_id=ids[0])
    async with create_channel(suite.addr("feature_service"), FEW_RETRIES,
                              tls=ca.issue("partner-1", service=False)) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await feature_pb2_grpc.FeatureServiceStub(channel).GetFeatureVector(
                feature_request, metadata=service_token, timeout=5)
        err = CallError.from_rpc_error(info.value)
        assert (err.code, err.reason) == (grpc.StatusCode.PERMISSION_DENIED, "SERVICE_CERTIFICATE_REQUIRED")
    async with create_channel(suite.addr("feature_service"), FEW_RETRIES, tls=suite.tls) as channel:
        reply = await feature_pb2_grpc.FeatureServiceStub(channel).GetFeatureVector(
            feature_request, metadata=service_token, timeout=5)
        assert reply.feature_vector.record_count > 0
