"""Token keys by id: thumbprints, key rings read from files (and re-read), and a
verifier that picks the key a token names."""

from __future__ import annotations

import base64
import os
import time
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from creditscore.runtime import (
    KeyRing,
    KeyRingFile,
    SettingsError,
    TokenVerifier,
    Unauthenticated,
    key_id,
)
from tests.authkit import TokenKeys


def _reason(verifier: TokenVerifier, token: str) -> str:
    with pytest.raises(Unauthenticated) as caught:
        verifier.verify(token)
    return caught.value.reason


def test_the_key_id_is_the_rfc_7638_thumbprint() -> None:
    # RFC 8037, appendix A.3: the thumbprint of its Ed25519 example key.
    raw = base64.urlsafe_b64decode("11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo=")
    assert key_id(Ed25519PublicKey.from_public_bytes(raw)) == "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
    private = Ed25519PrivateKey.generate()
    assert key_id(private) == key_id(private.public_key())


def test_a_ring_holds_every_pem_key_of_a_file() -> None:
    old, new = TokenKeys.generate(), TokenKeys.generate()
    ring = KeyRing.from_pem(old.public_pem + b"\n" + new.public_pem)
    assert set(ring) == {key_id(old.private_key), key_id(new.private_key)}
    with pytest.raises(ValueError, match="no PEM public key"):
        KeyRing.from_pem(b"nothing here")
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    ec_pem = ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    with pytest.raises(ValueError, match="Ed25519"):
        KeyRing.from_pem(old.public_pem + ec_pem)


def _rewrite(path: Path, data: bytes) -> None:
    """Replaces the file as Kubernetes does a Secret volume: a new file moved in."""
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def test_a_ring_file_is_reread_when_it_changes_and_a_bad_version_keeps_the_last_good(tmp_path: Path) -> None:
    old, new = TokenKeys.generate(), TokenKeys.generate()
    path = tmp_path / "ring.pem"
    path.write_bytes(old.public_pem)
    ring_file = KeyRingFile(path)
    assert set(ring_file.ring) == {key_id(old.private_key)}
    assert not ring_file.reload()  # unchanged
    _rewrite(path, old.public_pem + new.public_pem)
    assert ring_file.reload() and set(ring_file.ring) == {key_id(old.private_key), key_id(new.private_key)}
    _rewrite(path, b"-----BEGIN PUBLIC KEY-----\ngarbage\n-----END PUBLIC KEY-----\n")
    assert not ring_file.reload()  # logged, the last good ring kept
    assert set(ring_file.ring) == {key_id(old.private_key), key_id(new.private_key)}
    path.unlink()
    assert not ring_file.reload()
    with pytest.raises(SettingsError, match="no such file"):
        KeyRingFile(tmp_path / "missing.pem")


def test_the_verifier_takes_the_key_a_token_names_and_refuses_unknown_ones() -> None:
    old, new, stranger = TokenKeys.generate(), TokenKeys.generate(), TokenKeys.generate()
    verifier = TokenVerifier(KeyRing.of(old.private_key.public_key(), new.private_key.public_key()), "gateway")
    for keys in (old, new):
        token = keys.partner("p1", headers={"kid": key_id(keys.private_key)})
        assert verifier.verify(token).id == "p1"
    # A token from before key ids is tried against every key of the ring.
    assert verifier.verify(new.partner("p2")).id == "p2"
    # Signed by a key the ring does not hold, named or not, or naming another key.
    assert _reason(verifier, stranger.partner("p1", headers={"kid": key_id(stranger.private_key)})) == "TOKEN_INVALID"
    assert _reason(verifier, stranger.partner("p1")) == "TOKEN_INVALID"
    assert _reason(verifier, stranger.partner("p1", headers={"kid": key_id(old.private_key)})) == "TOKEN_INVALID"
    # A key id that is not a string (PyJWT will not write one: the header is made by hand).
    header = base64.urlsafe_b64encode(b'{"alg":"EdDSA","typ":"JWT","kid":7}').rstrip(b"=").decode()
    assert _reason(verifier, ".".join([header, *old.partner("p1").split(".")[1:]])) == "TOKEN_INVALID"


def test_retiring_a_key_ends_its_tokens_even_those_verified_before() -> None:
    old, new = TokenKeys.generate(), TokenKeys.generate()
    verifier = TokenVerifier(KeyRing.of(old.private_key.public_key(), new.private_key.public_key()), "gateway")
    token = old.partner("p1", headers={"kid": key_id(old.private_key)})
    assert verifier.verify(token).id == "p1"  # now cached
    verifier.set_keys(KeyRing.of(new.private_key.public_key()))
    assert _reason(verifier, token) == "TOKEN_INVALID"


def test_the_generation_claim_is_read_and_checked() -> None:
    keys = TokenKeys.generate()
    verifier = TokenVerifier(keys.public_pem, "gateway")
    assert verifier.verify(keys.partner("p1", gen=1765000000000)).generation == 1765000000000
    assert verifier.verify(keys.partner("p2")).generation == 0
    for bad in (-1, "12", True, 1.5):
        assert _reason(verifier, keys.partner("p3", gen=bad)) == "TOKEN_INVALID"


def test_a_token_signed_with_the_none_algorithm_and_a_kid_is_refused() -> None:
    keys = TokenKeys.generate()
    verifier = TokenVerifier(keys.public_pem, "gateway")
    now = int(time.time())
    forged = jwt.encode({"iss": "creditscore-consent", "sub": "p1", "aud": "gateway", "kind": "partner",
                         "iat": now, "exp": now + 60, "jti": "x"}, None, algorithm="none",
                        headers={"kid": key_id(keys.private_key)})
    assert _reason(verifier, forged) == "TOKEN_INVALID"
