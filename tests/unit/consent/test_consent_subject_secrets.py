"""Subjects' own secrets: made and hashed exactly as client secrets are, told
apart from them by their prefix; the credential desk's subject path (one token
kind, one refusal, one hash check whatever the credential); and the store, on SQLite
and PostgreSQL: the hash written at enrollment only, replaced by a rotation,
deleted with a closed account and kept by a withdrawal of everything."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

import consent_service.tokens as tokens_module
from consent_service.consents import Enrollment, RequestKey, Subject
from consent_service.purge import DeletionScope
from consent_service.registry import (
    SUBJECT_SECRET_PREFIX,
    Client,
    hash_generated_secret,
    hash_secret,
    is_subject_secret,
    load_service_credentials,
    new_secret,
    new_subject_secret,
    verify_generated_secret,
    verify_secret,
)
from consent_service.store import ConsentStore, subjects_table
from consent_service.tokens import CredentialDesk, TokenIssuer
from creditscore.runtime import (
    AUDIENCE_GATEWAY,
    KIND_PARTNER,
    KIND_SERVICE,
    KIND_SUBJECT,
    NotFound,
    SettingsError,
    TokenVerifier,
    Unauthenticated,
    key_id,
)

T0 = datetime(2030, 1, 1, tzinfo=UTC)


# --- secrets -------------------------------------------------------------------


def test_subject_secrets_are_random_prefixed_and_hashed() -> None:
    made = {new_subject_secret() for _ in range(50)}
    assert len(made) == 50
    assert all(s.startswith(SUBJECT_SECRET_PREFIX) and len(s) == len(SUBJECT_SECRET_PREFIX) + 43 for s in made)
    secret = made.pop()
    # 256 random bits: one SHA-256 is enough (no scrypt per enrollment and sign-in).
    stored = hash_generated_secret(secret)
    assert stored.startswith("sha256$") and secret not in stored
    assert verify_generated_secret(secret, stored) and not verify_generated_secret(secret + "x", stored)
    assert not verify_generated_secret(secret, hash_generated_secret(new_subject_secret()))
    assert not verify_generated_secret(secret, None)
    # A stored client secret (scrypt) never verifies as a generated one.
    assert not verify_generated_secret(secret, hash_secret(secret))
    # A client secret never has the subject's form (its prefix holds a character
    # URL-safe base64 never makes).
    assert not any(is_subject_secret(new_secret()) or "." in new_secret() for _ in range(200))


def test_a_service_secret_may_not_have_a_subjects_form(tmp_path: Path) -> None:
    path = tmp_path / "service-credentials"
    path.write_text(f"gateway {SUBJECT_SECRET_PREFIX}abc\n")
    with pytest.raises(SettingsError, match="line 1"):
        load_service_credentials(str(path))
    path.write_text("gateway sbjabc\n")  # no dot: an ordinary secret
    assert set(load_service_credentials(str(path))) == {"gateway"}


# --- the credential desk ---------------------------------------------------------


class Credentials:
    """The store's side of the desk: registered clients and subjects' secrets."""

    def __init__(self, clients: list[Client], hashes: dict[str, str | None]) -> None:
        self.clients = {c.client_id: c for c in clients}
        self.hashes = hashes

    async def get_client(self, client_id: str) -> Client | None:
        return self.clients.get(client_id)

    async def subject_credentials(self, subject_id: str) -> tuple[str | None, int] | None:
        if subject_id not in self.hashes:
            return None
        return self.hashes[subject_id], 7

    async def service_generation(self, service_id: str) -> int:
        return 0


@pytest.fixture(scope="module")
def secrets() -> dict[str, str]:
    return {"alice": new_subject_secret(), "gateway": new_subject_secret(), "acme": new_secret(),
            "service": "service-secret"}


@pytest.fixture
def desk(secrets: dict[str, str]) -> CredentialDesk:
    key = Ed25519PrivateKey.generate()
    issuer = TokenIssuer(key, ttl=timedelta(minutes=15), subject_ttl=timedelta(minutes=2))
    services = {"gateway": Client("gateway", KIND_SERVICE, "gateway", hash_secret(secrets["service"]))}
    store = Credentials([Client("acme", KIND_PARTNER, "Acme", hash_secret(secrets["acme"]))], {
        "alice": hash_generated_secret(secrets["alice"]),
        # A subject may carry a service's id: another namespace.
        "gateway": hash_generated_secret(secrets["gateway"]),
        # Enrolled before subjects had secrets.
        "legacy": None,
    })
    return CredentialDesk(issuer, services, store)


def public_pem(desk: CredentialDesk) -> bytes:
    return desk.issuer.public_key_pem


async def test_a_subject_gets_a_short_lived_subject_token_for_the_gateway(desk, secrets) -> None:
    issued = await desk.issue("alice", secrets["alice"])
    assert (issued.kind, issued.audience) == (KIND_SUBJECT, AUDIENCE_GATEWAY)
    principal = TokenVerifier(public_pem(desk), AUDIENCE_GATEWAY).verify(issued.token)
    assert (principal.kind, principal.id) == (KIND_SUBJECT, "alice")
    claims = jwt.decode(issued.token, options={"verify_signature": False})
    assert claims["exp"] - claims["iat"] == 120  # the subject's lifetime, not the clients' 15 minutes
    # The same id as a service's: each gets its own kind with its own secret.
    assert (await desk.issue("gateway", secrets["gateway"])).kind == KIND_SUBJECT
    assert (await desk.issue("gateway", secrets["service"])).kind == KIND_SERVICE
    assert (await desk.issue("acme", secrets["acme"])).kind == KIND_PARTNER


async def test_every_wrong_subject_credential_is_the_one_refusal_after_one_hash_check(
    desk, secrets, monkeypatch
) -> None:
    checks: list[str | None] = []

    def counting(verify):
        def check(secret: str, encoded: str | None) -> bool:
            checks.append(encoded)
            return verify(secret, encoded)
        return check

    monkeypatch.setattr(tokens_module, "verify_secret", counting(verify_secret))
    monkeypatch.setattr(tokens_module, "verify_generated_secret", counting(verify_generated_secret))
    cases = {
        "wrong secret": ("alice", secrets["alice"] + "x"),
        "another subject's secret": ("alice", secrets["gateway"]),
        "unknown subject": ("bob", secrets["alice"]),
        "a subject without a secret": ("legacy", secrets["alice"]),
        "not a subject id": ("no such!", secrets["alice"]),
        "a partner's id with a subject's secret": ("acme", secrets["alice"]),
        "a subject's id with a client's secret": ("alice", secrets["acme"]),
        "a partner's wrong secret": ("acme", secrets["acme"] + "x"),
    }
    for name, (client_id, secret) in cases.items():
        checks.clear()
        with pytest.raises(Unauthenticated) as info:
            await desk.issue(client_id, secret)
        assert (info.value.message, info.value.reason, info.value.metadata) == (
            "the client credentials are not valid", "INVALID_CLIENT", {}), name
        assert len(checks) == 1, name  # as much work for every refusal


def test_the_subject_lifetime_must_be_positive() -> None:
    with pytest.raises(ValueError):
        TokenIssuer(Ed25519PrivateKey.generate(), subject_ttl=timedelta(0))


def test_a_subject_token_carries_the_usual_claims_only() -> None:
    key = Ed25519PrivateKey.generate()
    token = TokenIssuer(key).issue(KIND_SUBJECT, "alice", generation=42).token
    pem = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    claims = jwt.decode(token, pem, algorithms=["EdDSA"], audience=AUDIENCE_GATEWAY)
    assert set(claims) == {"iss", "sub", "aud", "kind", "iat", "exp", "jti", "gen"}
    assert claims["gen"] == 42
    assert jwt.get_unverified_header(token)["kid"] == key_id(key)
    assert (claims["sub"], claims["kind"]) == ("alice", KIND_SUBJECT)


# --- the store -------------------------------------------------------------------


def key(request_id: str, method: str = "Enroll", payload: bytes = b"p") -> RequestKey:
    return RequestKey.of(request_id, method, payload)


def enc(e: Enrollment) -> bytes:
    return json.dumps([e.subject.subject_id, e.created]).encode()


def enc_subject(s: Subject) -> bytes:
    return s.subject_id.encode()


async def stored_hashes(engine: AsyncEngine) -> dict[str, Any]:
    async with engine.connect() as conn:
        rows = (await conn.execute(select(subjects_table.c.subject_id, subjects_table.c.secret_hash))).all()
    return {row.subject_id: row.secret_hash for row in rows}


async def test_the_hash_is_written_by_the_enrollment_that_creates_the_subject(
    store: ConsentStore, engine: AsyncEngine
) -> None:
    first = await store.enroll_subject(key("e1", payload=b"s1"), "s1", now=T0, encode=enc, secret_hash="h1")
    assert first.value is not None and first.value.created
    assert await store.subject_secret_hash("s1") == "h1"
    # A retry of the request, and another enrollment of the id: the hash stays.
    again = await store.enroll_subject(key("e1", payload=b"s1"), "s1", now=T0, encode=enc, secret_hash="h2")
    assert again.replayed
    other = await store.enroll_subject(key("e2", payload=b"s1"), "s1", now=T0, encode=enc, secret_hash="h3")
    assert other.value is not None and not other.value.created
    assert await store.subject_secret_hash("s1") == "h1"
    # A subject enrolled without one, and nobody: no hash alike.
    await store.enroll_subject(key("e3", payload=b"s2"), "s2", now=T0, encode=enc)
    assert await store.subject_secret_hash("s2") is None
    assert await store.subject_secret_hash("nobody") is None
    assert await stored_hashes(engine) == {"s1": "h1", "s2": None}


async def test_a_rotation_replaces_the_hash_once_per_request(store: ConsentStore, engine: AsyncEngine) -> None:
    await store.enroll_subject(key("e1", payload=b"s1"), "s1", now=T0, encode=enc, secret_hash="h1")
    await store.enroll_subject(key("e2", payload=b"s2"), "s2", now=T0, encode=enc, secret_hash="other")
    done = await store.rotate_subject_secret(
        key("r1", "Rotate", b"s1"), subject_id="s1", secret_hash="h2", now=T0, encode=enc_subject)
    assert done.value == Subject("s1", T0) and done.response == b"s1"
    assert await store.subject_secret_hash("s1") == "h2"
    replay = await store.rotate_subject_secret(
        key("r1", "Rotate", b"s1"), subject_id="s1", secret_hash="h3", now=T0, encode=enc_subject)
    assert replay.replayed and await store.subject_secret_hash("s1") == "h2"
    assert await store.subject_secret_hash("s2") == "other"
    with pytest.raises(NotFound) as info:
        await store.rotate_subject_secret(
            key("r2", "Rotate", b"x"), subject_id="nobody", secret_hash="h", now=T0, encode=enc_subject)
    assert info.value.reason == "SUBJECT_NOT_FOUND"
    assert await stored_hashes(engine) == {"s1": "h2", "s2": "other"}


async def test_a_closed_account_takes_its_hash_and_a_withdrawal_of_everything_keeps_it(
    store: ConsentStore, engine: AsyncEngine
) -> None:
    for sid in ("closing", "withdrawing"):
        await store.enroll_subject(key(f"e-{sid}", payload=sid.encode()), sid, now=T0, encode=enc,
                                   secret_hash=f"hash-{sid}")
    await store.purge_subject(key("p1", "CloseAccount"), subject_id="closing", scope=DeletionScope.ACCOUNT, now=T0)
    await store.purge_subject(key("p2", "WithdrawAll"), subject_id="withdrawing", scope=DeletionScope.ALL_DATA,
                              now=T0)
    assert await store.subject_secret_hash("closing") is None
    assert await store.subject_secret_hash("withdrawing") == "hash-withdrawing"
    assert await stored_hashes(engine) == {"withdrawing": "hash-withdrawing"}
    # What an export reads of the subject has no secret in it.
    subject, *_ = await store.subject_holdings("withdrawing")
    assert subject == Subject("withdrawing", T0)
