"""Issuing tokens and keeping secrets: the signing key's files, the claims, what
the shared verifier makes of issued, expired, foreign and tampered tokens; client
secrets stored as salted scrypt hashes; the service credentials file."""

from __future__ import annotations

import hashlib
import hmac
import os
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from consent_service.registry import (
    hash_secret,
    load_service_credentials,
    new_secret,
    verify_secret,
)
from consent_service.tokens import TokenIssuer, load_or_create_signing_key
from creditscore.runtime import (
    AUDIENCE_GATEWAY,
    AUDIENCE_INGEST,
    AUDIENCE_INTERNAL,
    KIND_PARTNER,
    KIND_PRODUCER,
    KIND_SERVICE,
    SettingsError,
    TokenVerifier,
    Unauthenticated,
)


@pytest.fixture
def key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def public_pem(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def refusal(verifier: TokenVerifier, token: str) -> str:
    with pytest.raises(Unauthenticated) as info:
        verifier.verify(token)
    return info.value.reason


def test_each_kind_gets_its_audience_and_the_verifier_accepts_it(key: Ed25519PrivateKey) -> None:
    issuer = TokenIssuer(key)
    for kind, audience in ((KIND_PARTNER, AUDIENCE_GATEWAY), (KIND_PRODUCER, AUDIENCE_INGEST),
                           (KIND_SERVICE, AUDIENCE_INTERNAL)):
        issued = issuer.issue(kind, "client-1", sources=["DATA_SOURCE_PAYMENTS"])
        assert (issued.kind, issued.audience) == (kind, audience)
        principal = TokenVerifier(public_pem(key), audience).verify(issued.token)
        assert (principal.kind, principal.id, principal.token_id) == (kind, "client-1", issued.token_id)
        assert principal.sources == ({"DATA_SOURCE_PAYMENTS"} if kind == KIND_PRODUCER else set())
        # ... and only for that audience.
        for other in {AUDIENCE_GATEWAY, AUDIENCE_INGEST, AUDIENCE_INTERNAL} - {audience}:
            assert refusal(TokenVerifier(public_pem(key), other), issued.token) == "TOKEN_WRONG_AUDIENCE"
    claims = jwt.decode(issuer.issue(KIND_SERVICE, "gateway").token, options={"verify_signature": False})
    assert set(claims) == {"iss", "sub", "aud", "kind", "iat", "exp", "jti", "gen"}
    assert jwt.get_unverified_header(issuer.issue(KIND_SERVICE, "x").token)["alg"] == "EdDSA"


def test_expired_foreign_and_tampered_tokens_are_refused(key: Ed25519PrivateKey) -> None:
    verifier = TokenVerifier(public_pem(key), AUDIENCE_INTERNAL, leeway=5)
    past = datetime.now(UTC) - timedelta(minutes=20)
    expired = TokenIssuer(key, ttl=timedelta(minutes=15), clock=lambda: past).issue(KIND_SERVICE, "gateway")
    assert refusal(verifier, expired.token) == "TOKEN_EXPIRED"
    foreign = TokenIssuer(Ed25519PrivateKey.generate()).issue(KIND_SERVICE, "gateway")
    assert refusal(verifier, foreign.token) == "TOKEN_INVALID"
    good = TokenIssuer(key).issue(KIND_SERVICE, "gateway").token
    head, payload, signature = good.split(".")
    claims = jwt.utils.base64url_decode(payload)
    hs256 = jwt.utils.base64url_encode(b'{"alg":"HS256","typ":"JWT"}').decode()
    confused = hmac.new(public_pem(key), f"{hs256}.{payload}".encode(), hashlib.sha256).digest()
    for forged in (
        f"{head}.{jwt.utils.base64url_encode(claims.replace(b'gateway', b'ingest_')).decode()}.{signature}",
        f"{head}.{payload}.{signature[::-1]}",
        f"{head}.{payload}.",
        # "alg": "none" with the same claims
        jwt.encode(jwt.decode(good, options={"verify_signature": False}), key=None, algorithm="none"),
        # a symmetric token signed with the public key as its secret (key confusion)
        f"{hs256}.{payload}.{jwt.utils.base64url_encode(confused).decode()}",
    ):
        assert refusal(verifier, forged) == "TOKEN_INVALID"
    assert verifier.verify(good).id == "gateway"


def test_a_missing_key_is_generated_once_with_its_public_half(tmp_path: Path, caplog) -> None:
    path = tmp_path / "keys" / "signing.pem"
    key = load_or_create_signing_key(str(path), generate=True)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert (tmp_path / "keys" / "signing.pub.pem").read_bytes() == public_pem(key)
    assert "generated a new token signing key pair" in caplog.text
    # The next start loads the same key.
    again = load_or_create_signing_key(str(path), generate=True)
    assert public_pem(again) == public_pem(key)
    out = tmp_path / "elsewhere.pem"
    load_or_create_signing_key(str(tmp_path / "k2.pem"), generate=True, public_out=str(out))
    assert out.is_file()


def test_a_missing_or_wrong_key_is_refused_when_not_generating(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="no such file"):
        load_or_create_signing_key(str(tmp_path / "none.pem"), generate=False)
    ec_key = tmp_path / "ec.pem"
    ec_key.write_bytes(ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    with pytest.raises(SettingsError, match="not an Ed25519 private key"):
        load_or_create_signing_key(str(ec_key), generate=True)
    junk = tmp_path / "junk.pem"
    junk.write_text("not a key")
    with pytest.raises(SettingsError, match="not a PEM private key"):
        load_or_create_signing_key(str(junk), generate=True)


def test_secrets_are_stored_as_salted_scrypt_hashes() -> None:
    secret = new_secret()
    stored = hash_secret(secret)
    assert stored.startswith("scrypt$16384$8$1$") and secret not in stored
    assert hash_secret(secret) != stored  # a new salt each time
    assert verify_secret(secret, stored)
    assert not verify_secret(secret + "x", stored)
    assert not verify_secret("", stored)
    assert not verify_secret(secret, None)  # unknown client: a dummy hash is checked
    assert not verify_secret(secret, "md5$abc")
    assert not verify_secret(secret, "scrypt$16384$8$1$not-base64$x")


def test_the_service_credentials_file(tmp_path: Path) -> None:
    hashed = hash_secret("s3cret")
    path = tmp_path / "creds"
    path.write_text(f"# services\n\ngateway plain-secret\ningest_service {hashed}\n")
    services = load_service_credentials(str(path))
    assert set(services) == {"gateway", "ingest_service"}
    assert all(c.kind == KIND_SERVICE for c in services.values())
    assert verify_secret("plain-secret", services["gateway"].secret_hash)
    assert services["ingest_service"].secret_hash == hashed
    assert load_service_credentials("") == {}
    for bad, message in (("gateway", "expected"), ("bad id! x", "expected"), ("a x\na y", "given twice")):
        path.write_text(bad)
        with pytest.raises(SettingsError, match=message):
            load_service_credentials(str(path))
    with pytest.raises(SettingsError, match="no such file"):
        load_service_credentials(str(tmp_path / "missing"))


def test_the_hash_secret_command_reads_stdin(monkeypatch, capsys) -> None:
    import io

    from consent_service.__main__ import main

    monkeypatch.setattr("sys.stdin", io.StringIO("a-service-secret\n"))
    with pytest.raises(SystemExit) as exit_:
        main(["hash-secret"])
    assert exit_.value.code == 0
    assert verify_secret("a-service-secret", capsys.readouterr().out.strip())
