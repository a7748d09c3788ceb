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
private key readable by its owner only. Every token names its signing key in the
header (``kid``); ``SigningKeys`` re-reads the key file, so that the key can be
rotated without a restart (docs/deploy.md has the operator's steps). Every token
carries its principal's credential generation (``gen``): see ``revocation``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Protocol

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from creditscore.runtime import (
    AUDIENCE_GATEWAY,
    AUDIENCE_INGEST,
    AUDIENCE_INTERNAL,
    ISSUER,
    KIND_PARTNER,
    KIND_PRODUCER,
    KIND_SERVICE,
    KIND_SUBJECT,
    KeyRing,
    KeyRingFile,
    SettingsError,
    TokenVerifier,
    is_subject_id,
    key_id,
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
    "CredentialDesk",
    "CredentialStore",
    "IssuedToken",
    "SigningKeys",
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
    """Signs tokens with ``private_key`` (naming it in the header's ``kid``);
    ``ttl`` is their lifetime (``subject_ttl`` that of subjects' tokens), ``clock``
    "now". ``set_key`` switches to another signing key (a rotation)."""

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
        self._kid = key_id(private_key)
        self._ttl = ttl
        self._subject_ttl = subject_ttl
        self._clock = clock

    @property
    def longest_ttl(self) -> timedelta:
        return max(self._ttl, self._subject_ttl)

    @property
    def key_id(self) -> str:
        return self._kid

    @property
    def public_key(self) -> Ed25519PublicKey:
        return self._key.public_key()

    @property
    def public_key_pem(self) -> bytes:
        return self._key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def set_key(self, private_key: Ed25519PrivateKey) -> None:
        self._key = private_key
        self._kid = key_id(private_key)

    def issue(
        self, kind: str, subject: str, *, sources: Collection[str] = (), generation: int = 0
    ) -> IssuedToken:
        """A token for ``subject`` (the caller's id) of ``kind``, for the audience of
        that kind, carrying the principal's credential ``generation``; a
        producer's lists the source names it may send."""
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
            "gen": generation,
        }
        if kind == KIND_PRODUCER:
            claims["sources"] = sorted(sources)
        token = jwt.encode(claims, self._key, algorithm="EdDSA", headers={"kid": self._kid})
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
        loaded = serialization.load_pem_private_key(private_path.read_bytes(), password=None)
    except (ValueError, TypeError) as exc:
        raise SettingsError(f"TOKEN_SIGNING_KEY_FILE={path!r}: not a PEM private key ({exc})") from None
    if not isinstance(loaded, Ed25519PrivateKey):
        raise SettingsError(f"TOKEN_SIGNING_KEY_FILE={path!r}: not an Ed25519 private key")
    return loaded


class CredentialStore(Protocol):
    """Where registered partners and producers, enrolled subjects and the
    generations of services' tokens are found (the store)."""

    async def get_client(self, client_id: str) -> Client | None: ...

    async def subject_credentials(self, subject_id: str) -> tuple[str | None, int] | None: ...

    async def service_generation(self, service_id: str) -> int: ...


class CredentialDesk:
    """Client credentials in, a token out: the use case behind ``IssueToken``.

    ``services`` are the configured service identities (tried first; a partner or
    producer can never register under their ids); registered clients and
    subjects come from ``store``, subjects for a secret of a subject's form
    (``registry.SUBJECT_SECRET_PREFIX``) only, whatever the client id. A wrong
    secret, an unknown client, a revoked one, a subject without a secret (or no
    more: a closed account) are the same error, after the same work: one scrypt
    (in a worker thread) for a client's secret, one SHA-256 for a subject's (a
    generated 256-bit secret: see ``registry.hash_generated_secret``). Every token
    carries its principal's current credential generation."""

    def __init__(self, issuer: TokenIssuer, services: Mapping[str, Client], store: CredentialStore) -> None:
        self._issuer = issuer
        self._services = dict(services)
        self._store = store

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
            client = self._services.get(client_id) or await self._store.get_client(client_id)
        hashed = client.secret_hash if client is not None else None
        if not await asyncio.to_thread(verify_secret, client_secret, hashed) or client is None:
            raise invalid_client()
        if client.revoke_time is not None:
            raise invalid_client()
        generation = client.token_generation
        if client.kind == KIND_SERVICE:
            generation = await self._store.service_generation(client.client_id)
        return self._issuer.issue(
            client.kind, client.client_id, sources=source_names(client.sources), generation=generation
        )

    async def service_token(self, service_id: str) -> IssuedToken:
        """A service token for ``service_id``, signed here without credentials (the
        consent service's own calls), at the service's current generation."""
        generation = await self._store.service_generation(service_id)
        return self._issuer.issue(KIND_SERVICE, service_id, generation=generation)

    async def _issue_subject(self, subject_id: str, secret: str) -> IssuedToken:
        held = None
        if is_subject_id(subject_id):
            held = await self._store.subject_credentials(subject_id)
        hashed = held[0] if held is not None else None
        if not verify_generated_secret(secret, hashed) or held is None or hashed is None:
            raise invalid_client()
        return self._issuer.issue(KIND_SUBJECT, subject_id, generation=held[1])


class SigningKeys:
    """The consent service's keys during its life: the signing key, re-read from
    ``signing_file`` when it changes (a rotation), and the keys its own verifier
    accepts.

    With ``published`` (the key ring every other service verifies with,
    ``TOKEN_PUBLIC_KEY_FILE``), a new signing key is used only once its public key
    is in that ring, so that no service ever meets a token it cannot verify; until
    then the old key keeps signing and the mismatch is logged. The verifier
    accepts the published ring plus the signing key. Without ``published`` (a
    development suite), it accepts the signing key and every key this process
    signed with before, for the longest token lifetime after the switch."""

    def __init__(
        self,
        issuer: TokenIssuer,
        verifier: TokenVerifier | None,
        *,
        signing_file: str,
        published: KeyRingFile | None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._issuer = issuer
        self._verifier = verifier
        self._path = Path(signing_file)
        self._published = published
        self._clock = clock
        self._seen = _file_signature(self._path)
        #: Keys signed with before, and until when they are still accepted.
        self._previous: dict[str, tuple[Ed25519PublicKey, float]] = {}
        if published is not None and issuer.key_id not in published.ring:
            raise SettingsError(
                f"the token signing key ({issuer.key_id}) is not in TOKEN_PUBLIC_KEY_FILE "
                f"({', '.join(sorted(published.ring))}): the other services could not verify its tokens"
            )
        self._update_verifier()

    def ring(self) -> KeyRing:
        now = self._clock()
        self._previous = {k: v for k, v in self._previous.items() if v[1] > now}
        keys = {self._issuer.key_id: self._issuer.public_key}
        keys.update({k: v[0] for k, v in self._previous.items()})
        if self._published is not None:
            return self._published.ring.merged(keys)
        return KeyRing(keys)

    def _update_verifier(self) -> None:
        if self._verifier is not None:
            self._verifier.set_keys(self.ring())

    def reload(self) -> None:
        """Re-reads the published ring and the signing key file if they changed
        (an ``AuthWatch`` tick)."""
        if self._published is not None:
            self._published.reload()
        seen = _file_signature(self._path)
        if seen != self._seen:
            self._seen = seen
            self._switch()
        self._update_verifier()

    def _switch(self) -> None:
        try:
            key = load_or_create_signing_key(str(self._path), generate=False)
        except SettingsError as exc:
            log.error("token signing key: %s; still signing with %s", exc, self._issuer.key_id)
            return
        kid = key_id(key)
        if kid == self._issuer.key_id:
            return
        if self._published is not None and kid not in self._published.ring:
            log.error(
                "token signing key %s is not in TOKEN_PUBLIC_KEY_FILE yet (%s): still signing with %s; "
                "publish its public key to every service first",
                kid, ", ".join(sorted(self._published.ring)), self._issuer.key_id,
            )
            self._seen = None  # try again at the next tick
            return
        old_kid, old_public = self._issuer.key_id, self._issuer.public_key
        self._issuer.set_key(key)
        if self._published is None:
            keep_until = self._clock() + self._issuer.longest_ttl.total_seconds() + 60
            self._previous[old_kid] = (old_public, keep_until)
        log.warning("token signing key rotated: now %s (was %s)", kid, old_kid)


def _file_signature(path: Path) -> tuple[int, int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_ino, st.st_mtime_ns, st.st_size)
