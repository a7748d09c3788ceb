"""Keys, tokens and certificates made in the test: an Ed25519 token key pair with a
minting helper that can forge any claim, and a small CA issuing service and other
certificates for mutual TLS."""

from __future__ import annotations

import datetime as dt
import ipaddress
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from creditscore.runtime import ISSUER, SERVICE_SPIFFE_PREFIX, AuthSettings, RevocationPage, TlsSettings

__all__ = ["NO_AUTH", "Ca", "TokenKeys", "bearer", "no_revocations"]


async def no_revocations(cursor: int) -> RevocationPage:
    """A revocation source with nothing revoked (a server built alone in a test)."""
    return RevocationPage(entries=(), last_sequence=cursor)


def bearer(token: str) -> tuple[tuple[str, str], ...]:
    """Call metadata carrying ``token``."""
    return (("authorization", f"Bearer {token}"),)


@dataclass
class TokenKeys:
    """An Ed25519 key pair; ``mint`` signs whatever claims a test needs."""

    private_key: ed25519.Ed25519PrivateKey

    @classmethod
    def generate(cls) -> TokenKeys:
        return cls(ed25519.Ed25519PrivateKey.generate())

    @property
    def public_pem(self) -> bytes:
        return self.private_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    @property
    def private_pem(self) -> bytes:
        return self.private_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )

    def write(self, folder: Path) -> Path:
        """Writes the public key; returns its path (TOKEN_PUBLIC_KEY_FILE)."""
        path = folder / "token-public.pem"
        path.write_bytes(self.public_pem)
        return path

    def settings(self, folder: Path) -> AuthSettings:
        return AuthSettings(mode="required", public_key_file=str(self.write(folder)))

    def mint(
        self,
        sub: str,
        kind: str,
        aud: str,
        *,
        sources: list[str] | None = None,
        ttl: float = 900,
        iat: float | None = None,
        headers: dict[str, Any] | None = None,
        **extra: Any,
    ) -> str:
        """A token with the usual claims, ``extra`` ones over them (None drops one),
        and ``headers`` (a ``kid``) in its header."""
        now = time.time() if iat is None else iat
        claims: dict[str, Any] = {
            "iss": ISSUER, "sub": sub, "aud": aud, "kind": kind,
            "iat": int(now), "exp": int(now + ttl), "jti": uuid.uuid4().hex,
        }
        if sources is not None:
            claims["sources"] = sources
        claims.update(extra)
        claims = {k: v for k, v in claims.items() if v is not None}
        return jwt.encode(claims, self.private_key, algorithm="EdDSA", headers=headers)

    def partner(self, partner_id: str, **kw: Any) -> str:
        return self.mint(partner_id, "partner", "gateway", **kw)

    def producer(self, producer_id: str, sources: list[str], **kw: Any) -> str:
        return self.mint(producer_id, "producer", "ingest", sources=sources, **kw)

    def service(self, name: str, **kw: Any) -> str:
        return self.mint(name, "service", "internal", **kw)


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _pem_key(key: Any) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


class Ca:
    """A certificate authority made in the test; ``issue`` writes a certificate and
    key signed by it and returns the ``TlsSettings`` that use them."""

    def __init__(self, folder: Path, name: str = "test-ca") -> None:
        self.folder = folder
        self.name = name
        folder.mkdir(parents=True, exist_ok=True)
        self.key = _key()
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        now = dt.datetime.now(dt.UTC)
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(subject).issuer_name(subject)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(
                digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
                key_encipherment=False, data_encipherment=False, key_agreement=False,
                encipher_only=False, decipher_only=False), critical=True)
            .sign(self.key, hashes.SHA256())
        )
        self.ca_file = folder / f"{name}.pem"
        self.ca_file.write_bytes(self.cert.public_bytes(serialization.Encoding.PEM))

    def issue(
        self,
        name: str,
        *,
        service: bool = True,
        require_client_auth: bool = True,
        ca_file: Path | None = None,
    ) -> TlsSettings:
        """A certificate for ``name`` valid for localhost and 127.0.0.1, naming the
        service ``name`` (SPIFFE URI SAN) when ``service``; trusting this CA (or
        ``ca_file``)."""
        key = _key()
        now = dt.datetime.now(dt.UTC)
        san: list[x509.GeneralName] = [
            x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))
        ]
        if service:
            san.append(x509.UniformResourceIdentifier(SERVICE_SPIFFE_PREFIX + name))
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(san), critical=False)
            .add_extension(x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
            .sign(self.key, hashes.SHA256())
        )
        cert_file = self.folder / f"{self.name}-{name}.pem"
        key_file = self.folder / f"{self.name}-{name}.key"
        cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_file.write_bytes(_pem_key(key))
        return TlsSettings(
            cert_file=str(cert_file), key_file=str(key_file),
            ca_file=str(ca_file or self.ca_file), require_client_auth=require_client_auth,
        )


#: For tests of behaviour unrelated to authentication (the service logs a loud warning).
NO_AUTH = AuthSettings(mode="disabled")
