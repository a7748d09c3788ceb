"""Issuing tokens: JWTs signed with the consent service's Ed25519 key.

The consent service is the only holder of the private key; every other service
verifies with the public key (``creditscore.runtime.TokenVerifier``). The claims
are those of the shared interface (``creditscore.runtime._auth``)::

    iss "creditscore-consent", sub (the caller's id), aud, kind, iat, exp, jti,
    sources (producers: the DataSource enum names they may send)

Subjects get tokens too (kind ``subject``, audience ``gateway``, ``sub`` the
subject id), for their own calls through the gateway, with a lifetime of their own.

Keys are PEM files. ``load_or_create_signing_key`` loads the private key, or, in
development, generates a key pair on first start (logging that it did) with the
private key readable by its owner only.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Protocol

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from creditscore.runtime import (
    AUDIENCE_GATEWAY,
    AUDIENCE_INGEST,
    AUDIENCE_INTERNAL,
    ISSUER,
    KIND_PARTNER,
    KIND_PRODUCER,
    KIND_SERVICE,
    KIND_SUBJECT,
    SettingsError,
    is_subject_id,
    utcnow,
)

from .registry import (
    Client,
    invalid_client,
    is_client_id,
    is_subject_secret,
    source_names,
    verify_generated_secret,
    verify_secret,
)

__all__ = [
    "AUDIENCE_OF_KIND",
    "ClientLookup",
    "CredentialDesk",
    "IssuedToken",
    "SubjectLookup",
    "TokenIssuer",
    "generate_key_pair",
    "load_or_create_signing_key",
    "public_key_path_for",
]

log = logging.getLogger("consent_service.tokens")

#: The audience of a token follows from the caller's kind: partners call the
#: gateway, producers the ingest service, services each other; subjects call the
#: gateway for themselves.
AUDIENCE_OF_KIND: dict[str, str] = {
    KIND_PARTNER: AUDIENCE_GATEWAY,
    KIND_PRODUCER: AUDIENCE_INGEST,
    KIND_SERVICE: AUDIENCE_INTERNAL,
    KIND_SUBJECT: AUDIENCE_GATEWAY,
}


@dataclass(frozen=True)
class IssuedToken:
    token: str
    expire_time: datetime
    audience: str
    kind: str
    token_id: str


class TokenIssuer:
    """Signs tokens with ``private_key``; ``ttl`` is their lifetime (``subject_ttl``
    that of subjects' tokens), ``clock`` "now"."""

    def __init__(
        self,
        private_key: Ed25519PrivateKey,
        *,
        ttl: timedelta = timedelta(minutes=15),
        subject_ttl: timedelta = timedelta(minutes=15),
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        if ttl <= timedelta(0) or subject_ttl <= timedelta(0):
            raise ValueError("a token's lifetime must be positive")
        self._key = private_key
        self._ttl = ttl
        self._subject_ttl = subject_ttl
        self._clock = clock

    @property
    def public_key_pem(self) -> bytes:
        return self._key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def issue(self, kind: str, subject: str, *, sources: Collection[str] = ()) -> IssuedToken:
        """A token for ``subject`` (the caller's id) of ``kind``, for the audience of
        that kind; a producer's lists the source names it may send."""
        audience = AUDIENCE_OF_KIND[kind]
        now = self._clock()
        expires = now + (self._subject_ttl if kind == KIND_SUBJECT else self._ttl)
        token_id = secrets.token_hex(16)
        claims: dict[str, object] = {
            "iss": ISSUER,
            "sub": subject,
            "aud": audience,
            "kind": kind,
            "iat": int(now.timestamp()),
            "exp": int(expires.timestamp()),
            "jti": token_id,
        }
        if kind == KIND_PRODUCER:
            claims["sources"] = sorted(sources)
        token = jwt.encode(claims, self._key, algorithm="EdDSA")
        return IssuedToken(token, expires.replace(microsecond=0), audience, kind, token_id)


def generate_key_pair(private_path: Path, public_path: Path) -> Ed25519PrivateKey:
    """Writes a new Ed25519 key pair: the private key (PEM, PKCS#8, mode 0600) and
    the public key (PEM, SubjectPublicKeyInfo). Refuses to overwrite a private key."""
    key = Ed25519PrivateKey.generate()
    private_path.parent.mkdir(parents=True, exist_ok=True)
    public_path.parent.mkdir(parents=True, exist_ok=True)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(pem)
    public_path.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return key


def public_key_path_for(private_path: Path) -> Path:
    """Where a generated key pair's public key goes by default: ``x.pem`` -> ``x.pub.pem``."""
    return private_path.with_name(f"{private_path.stem}.pub{private_path.suffix or '.pem'}")


def load_or_create_signing_key(path: str, *, generate: bool, public_out: str = "") -> Ed25519PrivateKey:
    """The Ed25519 private key in the PEM file ``path``. A missing file is created
    with a new key pair when ``generate`` (the public key at ``public_out``, or
    beside it) and is a ``SettingsError`` otherwise; so is a file that does not
    hold an Ed25519 private key."""
    if not path:
        raise SettingsError("TOKEN_SIGNING_KEY_FILE must name the token signing key (PEM)")
    private_path = Path(path)
    if not private_path.exists():
        if not generate:
            raise SettingsError(
                f"TOKEN_SIGNING_KEY_FILE={path!r}: no such file (TOKEN_KEY_GENERATE=false)"
            )
        public_path = Path(public_out) if public_out else public_key_path_for(private_path)
        try:
            key = generate_key_pair(private_path, public_path)
        except FileExistsError:  # another replica generated it first: use that one
            return load_or_create_signing_key(path, generate=False)
        log.warning(
            "generated a new token signing key pair: private key %s, public key %s "
            "(development default; give every other service the public key as "
            "TOKEN_PUBLIC_KEY_FILE)",
            private_path, public_path,
        )
        return key
    try:
        key = serialization.load_pem_private_key(private_path.read_bytes(), password=None)
    except (ValueError, TypeError) as exc:
        raise SettingsError(f"TOKEN_SIGNING_KEY_FILE={path!r}: not a PEM private key ({exc})") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise SettingsError(f"TOKEN_SIGNING_KEY_FILE={path!r}: not an Ed25519 private key")
    return key


class ClientLookup(Protocol):
    """Where registered partners and producers are found (the store)."""

    async def get_client(self, client_id: str) -> Client | None: ...


class SubjectLookup(Protocol):
    """Where enrolled subjects' secrets are found (the store)."""

    async def subject_secret_hash(self, subject_id: str) -> str | None: ...


class CredentialDesk:
    """Client credentials in, a token out: the use case behind ``IssueToken``.

    ``services`` are the configured service identities (tried first; a partner or
    producer can never register under their ids); registered clients come from
    ``clients``; subjects from ``subjects``, for a secret of a subject's form
    (``registry.SUBJECT_SECRET_PREFIX``) only, whatever the client id. A wrong
    secret, an unknown client, a subject without a secret (or no more: a closed
    account) are the same error, after the same work: one scrypt (in a worker
    thread) for a client's secret, one SHA-256 for a subject's (a generated
    256-bit secret: see ``registry.hash_generated_secret``)."""

    def __init__(
        self,
        issuer: TokenIssuer,
        services: Mapping[str, Client],
        clients: ClientLookup,
        subjects: SubjectLookup | None = None,
    ) -> None:
        self._issuer = issuer
        self._services = dict(services)
        self._clients = clients
        self._subjects = subjects

    @property
    def issuer(self) -> TokenIssuer:
        return self._issuer

    def reserved(self, client_id: str) -> bool:
        """Whether ``client_id`` names a configured service."""
        return client_id in self._services

    async def issue(self, client_id: str, client_secret: str) -> IssuedToken:
        if is_subject_secret(client_secret):
            return await self._issue_subject(client_id, client_secret)
        client: Client | None = None
        if is_client_id(client_id):
            client = self._services.get(client_id) or await self._clients.get_client(client_id)
        hashed = client.secret_hash if client is not None else None
        if not await asyncio.to_thread(verify_secret, client_secret, hashed) or client is None:
            raise invalid_client()
        return self._issuer.issue(client.kind, client.client_id, sources=source_names(client.sources))

    async def _issue_subject(self, subject_id: str, secret: str) -> IssuedToken:
        hashed = None
        if self._subjects is not None and is_subject_id(subject_id):
            hashed = await self._subjects.subject_secret_hash(subject_id)
        if not verify_generated_secret(secret, hashed) or hashed is None:
            raise invalid_client()
        return self._issuer.issue(KIND_SUBJECT, subject_id)
