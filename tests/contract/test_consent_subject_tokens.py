"""Subjects' credentials on a real consent server (authentication required) over
SQLite and PostgreSQL: the secret shown once at enrollment and never stored in
clear (nor in the stored reply, nor in an export), traded for a subject token;
one INVALID_CLIENT for every wrong credential, a closed account's included; a
rotation that retires the old secret."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import jwt
import pytest
from sqlalchemy import select

from consent_service.config import Settings
from consent_service.server import ConsentApp, build_consent
from consent_service.store import requests_table, subjects_table
from creditscore.consent.v1 import consent_pb2 as pb
from creditscore.consent.v1 import consent_pb2_grpc
from creditscore.runtime import (
    AUDIENCE_GATEWAY,
    KIND_SERVICE,
    KIND_SUBJECT,
    CallError,
    ServerSettings,
    TokenSource,
    TokenVerifier,
    create_channel,
    make_engine,
)

SERVICE_SECRET = "operator-secret-from-a-file"


class NothingHeld:
    async def purge(self, request_id: str, subject_id: str, source: int, timeout: float) -> list:
        return []

    async def export(self, subject_id: str, timeout: float) -> list:
        return []


NOTHING = {name: NothingHeld() for name in ("ingest_service", "feature_service", "scoring_service")}


@dataclass
class Served:
    app: ConsentApp
    stub: consent_pb2_grpc.ConsentServiceStub  # a service's token
    bare: consent_pb2_grpc.ConsentServiceStub  # no token
    public_key: bytes
    database_url: str


@pytest.fixture
async def served(database_url: str, tmp_path: Path) -> AsyncIterator[Served]:
    credentials = tmp_path / "service-credentials"
    credentials.write_text(f"operator {SERVICE_SECRET}\n")
    app = await build_consent(
        Settings(
            server=ServerSettings(host="127.0.0.1", port=0),
            database_url=database_url,
            signing_key_file=str(tmp_path / "keys" / "signing.pem"),
            service_credentials_file=str(credentials),
            subject_token_ttl_seconds=120,
            purge_worker=False,
        ),
        purgers_override=NOTHING,
        held_override=NOTHING,
    )
    await app.handle.start()
    address = f"127.0.0.1:{app.handle.port}"
    channel = create_channel(address, tokens=TokenSource.static(app.issuer.issue(KIND_SERVICE, "gateway").token))
    bare = create_channel(address)
    try:
        yield Served(app, consent_pb2_grpc.ConsentServiceStub(channel), consent_pb2_grpc.ConsentServiceStub(bare),
                     (tmp_path / "keys" / "signing.pub.pem").read_bytes(), database_url)
    finally:
        await channel.close()
        await bare.close()
        await app.handle.stop(0)


async def fails(call: Awaitable[Any]) -> CallError:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call
    return CallError.from_rpc_error(info.value)


async def enroll(s: Served, subject_id: str, request_id: str | None = None) -> pb.EnrollSubjectResponse:
    return await s.stub.EnrollSubject(
        pb.EnrollSubjectRequest(request_id=request_id or f"e-{subject_id}", subject_id=subject_id), timeout=10)


async def token_for(s: Served, client_id: str, secret: str) -> pb.IssueTokenResponse:
    return await s.bare.IssueToken(pb.IssueTokenRequest(client_id=client_id, client_secret=secret), timeout=10)


async def rows(s: Served, table: Any) -> list[Any]:
    engine = make_engine(s.database_url)
    try:
        async with engine.connect() as conn:
            return list((await conn.execute(select(table))).all())
    finally:
        await engine.dispose()


async def test_the_secret_is_shown_once_and_traded_for_a_subject_token(served: Served) -> None:
    first = await enroll(served, "alice")
    secret = first.subject_secret
    assert first.created and secret.startswith("sbj.")
    # Retried, or enrolled again under another request: never shown again.
    assert (await enroll(served, "alice")).subject_secret == ""
    again = await enroll(served, "alice", "e-again")
    assert not again.created and again.subject_secret == ""
    # A generated id gets one too.
    generated = await served.stub.EnrollSubject(pb.EnrollSubjectRequest(request_id="e-gen"), timeout=10)
    assert generated.subject_secret.startswith("sbj.") and generated.subject_secret != secret

    issued = await token_for(served, "alice", secret)
    assert (issued.kind, issued.audience) == (KIND_SUBJECT, AUDIENCE_GATEWAY)
    principal = TokenVerifier(served.public_key, AUDIENCE_GATEWAY).verify(issued.token)
    assert (principal.kind, principal.id) == (KIND_SUBJECT, "alice")
    claims = jwt.decode(issued.token, options={"verify_signature": False})
    assert claims["exp"] - claims["iat"] == 120  # SUBJECT_TOKEN_TTL_SECONDS
    # A subject's token is for the gateway: the consent service refuses it.
    refused = await fails(served.bare.ListConsents(pb.ListConsentsRequest(subject_id="alice"),
                                                  metadata=(("authorization", f"Bearer {issued.token}"),),
                                                  timeout=5))
    assert (refused.code, refused.reason) == (grpc.StatusCode.UNAUTHENTICATED, "TOKEN_WRONG_AUDIENCE")

    # Stored only as a hash: not in the subject's row, not in the stored replies.
    (row,) = [r for r in await rows(served, subjects_table) if r.subject_id == "alice"]
    assert row.secret_hash.startswith("sha256$") and secret not in row.secret_hash
    stored = b"".join(bytes(r.response) for r in await rows(served, requests_table))
    assert secret.encode() not in stored and generated.subject_secret.encode() not in stored
    # Never exported.
    document = (await served.stub.ExportSubjectData(pb.ExportSubjectDataRequest(subject_id="alice"),
                                                    timeout=10)).document
    assert secret not in document and "scrypt$" not in document and "secret" not in json.loads(document)["subject"]


async def test_every_wrong_credential_gets_the_one_invalid_client(served: Served) -> None:
    alice = (await enroll(served, "alice")).subject_secret
    closing = (await enroll(served, "closing")).subject_secret
    # The closed account's secret worked before it was closed.
    assert (await token_for(served, "closing", closing)).kind == KIND_SUBJECT
    await served.stub.CloseAccount(pb.CloseAccountRequest(request_id="close-1", subject_id="closing"), timeout=10)
    withdrawing = (await enroll(served, "withdrawing")).subject_secret
    await served.stub.WithdrawAllConsents(
        pb.WithdrawAllConsentsRequest(request_id="wd-1", subject_id="withdrawing"), timeout=10)
    # Withdrawing everything keeps the enrollment, and with it the secret.
    assert (await token_for(served, "withdrawing", withdrawing)).kind == KIND_SUBJECT

    cases = {
        "wrong secret": ("alice", alice + "x"),
        "another subject's secret": ("alice", withdrawing),
        "unknown subject": ("bob", alice),
        "closed account": ("closing", closing),
        "an operator's id with a subject's secret": ("operator", alice),
        "a wrong service secret": ("operator", "not-it"),
        "unknown client": ("nobody", "secret"),
    }
    errors = {name: await fails(token_for(served, *creds)) for name, creds in cases.items()}
    shapes = {(e.code, e.message, e.reason, e.domain, tuple(e.metadata.items())) for e in errors.values()}
    assert shapes == {(grpc.StatusCode.UNAUTHENTICATED, "the client credentials are not valid",
                       "INVALID_CLIENT", "consent.creditscore", ())}, errors


async def test_a_rotation_retires_the_old_secret_and_is_shown_once(served: Served) -> None:
    old = (await enroll(served, "alice")).subject_secret
    request = pb.RotateSubjectSecretRequest(request_id="rot-1", subject_id="alice")
    rotated = await served.stub.RotateSubjectSecret(request, timeout=10)
    assert rotated.subject_id == "alice" and rotated.subject_secret.startswith("sbj.")
    assert rotated.subject_secret != old
    assert (await fails(token_for(served, "alice", old))).reason == "INVALID_CLIENT"
    assert (await token_for(served, "alice", rotated.subject_secret)).kind == KIND_SUBJECT
    # A retry: nothing changes and the secret is not shown again.
    retried = await served.stub.RotateSubjectSecret(request, timeout=10)
    assert (retried.subject_id, retried.subject_secret) == ("alice", "")
    assert (await token_for(served, "alice", rotated.subject_secret)).kind == KIND_SUBJECT
    # Only through a service's token; never for nobody; never without a request id.
    refused = await fails(served.bare.RotateSubjectSecret(request, timeout=10))
    assert refused.reason == "TOKEN_MISSING"
    unknown = await fails(served.stub.RotateSubjectSecret(
        pb.RotateSubjectSecretRequest(request_id="rot-2", subject_id="nobody"), timeout=10))
    assert (unknown.code, unknown.reason) == (grpc.StatusCode.NOT_FOUND, "SUBJECT_NOT_FOUND")
    bad = await fails(served.stub.RotateSubjectSecret(pb.RotateSubjectSecretRequest(subject_id="a b"), timeout=10))
    assert bad.code == grpc.StatusCode.INVALID_ARGUMENT
    assert [v.field for v in bad.violations] == ["request_id", "subject_id"]
