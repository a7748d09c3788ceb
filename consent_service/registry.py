"""Who may get a token: registered partners and producers, the configured
service identities, and enrolled subjects; their secrets and how they are checked.

Pure logic (no gRPC, no SQL), but for hashing: a client's secret is random (32
bytes, URL-safe base64), shown once, and stored only as a salted scrypt hash
(``scrypt$<n>$<r>$<p>$<salt>$<hash>``, standard base64), so that a copy of the
database does not hand out credentials. Checking a secret costs one scrypt
(about 16 MiB and tens of milliseconds): the caller runs it off the event loop,
and an unknown client costs the same as a known one (a dummy hash is checked),
so that timing does not tell which client ids exist.

A subject's secret is made and stored the same way, and starts with
``SUBJECT_SECRET_PREFIX`` (``sbj.``): a character that URL-safe base64 never
makes, so that ``IssueToken`` knows from the secret alone whether the client id
names a subject or a client (the two are different namespaces: a subject may
carry the id of a partner or of a service) and never has to try both.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from pathlib import Path

from creditscore.common.v1 import common_pb2
from creditscore.runtime import (
    KIND_PARTNER,
    KIND_PRODUCER,
    KIND_SERVICE,
    SettingsError,
    Unauthenticated,
    Violations,
)

from .consents import VALID_SOURCES

__all__ = [
    "CLIENT_ID_RULE",
    "MAX_DISPLAY_NAME_LENGTH",
    "SUBJECT_SECRET_PREFIX",
    "Client",
    "check_client_id",
    "check_display_name",
    "check_sources",
    "hash_secret",
    "invalid_client",
    "is_client_id",
    "is_subject_secret",
    "load_service_credentials",
    "new_partner_id",
    "new_secret",
    "new_subject_secret",
    "source_names",
    "verify_secret",
    "hash_generated_secret",
    "verify_generated_secret",
]

MAX_DISPLAY_NAME_LENGTH = 200
CLIENT_ID_RULE = "must be 1-64 characters of [A-Za-z0-9_.-]"
_CLIENT_ID = re.compile(r"[A-Za-z0-9_.-]{1,64}")

# scrypt cost: n=2^14, r=8 (16 MiB), p=1; a 32-byte key from a 16-byte salt.
SCRYPT_N = 1 << 14
SCRYPT_R = 8
SCRYPT_P = 1
_DKLEN = 32
_MAX_SECRET_LENGTH = 256
#: How every subject's secret starts ('.' is not in the URL-safe base64 alphabet
#: of client secrets).
SUBJECT_SECRET_PREFIX = "sbj."


@dataclass(frozen=True)
class Client:
    """A caller that can get tokens: a registered partner or producer, or a
    configured service. ``sources`` (DataSource numbers) for producers only."""

    client_id: str
    kind: str
    display_name: str
    secret_hash: str
    register_time: datetime | None = None
    sources: frozenset[int] = frozenset()
    #: The credential generation its tokens carry (``revocation``).
    token_generation: int = 0
    #: Set once the client was revoked (its contract ended): no token any more.
    revoke_time: datetime | None = None


def is_client_id(value: str) -> bool:
    return _CLIENT_ID.fullmatch(value) is not None


def check_client_id(v: Violations, value: str, field: str, *, required: bool = True) -> None:
    if not value:
        if required:
            v.add(field, "must be set")
        return
    if not is_client_id(value):
        v.add(field, CLIENT_ID_RULE)


def check_display_name(v: Violations, value: str, field: str = "display_name") -> None:
    if not value.strip():
        v.add(field, "must be set")
    elif len(value) > MAX_DISPLAY_NAME_LENGTH or not value.isprintable():
        v.add(field, f"must be 1-{MAX_DISPLAY_NAME_LENGTH} printable characters")


def check_sources(v: Violations, sources: Iterable[int], field: str = "sources") -> None:
    values = list(sources)
    if not values:
        v.add(field, "must name at least one data source")
        return
    for i, source in enumerate(values):
        if source not in VALID_SOURCES:
            v.add(f"{field}[{i}]", f"unknown data source {source}" if source else "must be set")
    if len(set(values)) != len(values):
        v.add(field, "must not repeat a data source")


def source_names(sources: Iterable[int]) -> list[str]:
    """The DataSource enum names of ``sources`` (a producer token's ``sources``)."""
    return sorted(common_pb2.DataSource.Name(common_pb2.DataSource.ValueType(s)) for s in sources)


def new_partner_id() -> str:
    return "ptn_" + secrets.token_hex(12)


def new_secret() -> str:
    """A fresh client secret: 32 random bytes, URL-safe base64 (43 characters)."""
    return secrets.token_urlsafe(32)


def new_subject_secret() -> str:
    """A fresh subject secret: the prefix and 32 random bytes, URL-safe base64."""
    return SUBJECT_SECRET_PREFIX + secrets.token_urlsafe(32)


def is_subject_secret(secret: str) -> bool:
    """Whether ``secret`` has a subject secret's form (its prefix)."""
    return secret.startswith(SUBJECT_SECRET_PREFIX)


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def hash_secret(secret: str, *, salt: bytes | None = None) -> str:
    """The stored form of ``secret``: ``scrypt$n$r$p$salt$hash``."""
    salt = os.urandom(16) if salt is None else salt
    digest = hashlib.scrypt(
        secret.encode(), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P, dklen=_DKLEN
    )
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${_b64(salt)}${_b64(digest)}"


@lru_cache(maxsize=1)
def _dummy_hash() -> str:
    return hash_secret(secrets.token_urlsafe(32))


def hash_generated_secret(secret: str) -> str:
    """The stored form of a secret this service generated with 256 random bits (a
    subject's): ``sha256$hash``. A slow hash guards secrets people choose; against
    256 random bits one SHA-256 is as safe and costs microseconds, not the ~40 ms
    of CPU of an scrypt, paid at every enrollment and every sign-in."""
    return "sha256$" + _b64(hashlib.sha256(secret[:_MAX_SECRET_LENGTH].encode()).digest())


_DUMMY_GENERATED = hash_generated_secret("not a secret")


def verify_generated_secret(secret: str, encoded: str | None) -> bool:
    """Whether ``secret`` matches a ``hash_generated_secret`` form; with ``encoded``
    None a dummy is compared (the same work), and False comes back."""
    target = encoded if encoded is not None else _DUMMY_GENERATED
    actual = hash_generated_secret(secret)
    return (encoded is not None and target.startswith("sha256$")
            and hmac.compare_digest(actual.encode(), target.encode()))


def verify_secret(secret: str, encoded: str | None) -> bool:
    """Whether ``secret`` matches the stored hash; with ``encoded`` None (an unknown
    client) a dummy hash is checked, so that both take as long, and False comes back."""
    target = encoded if encoded is not None else _dummy_hash()
    try:
        scheme, n, r, p, salt, digest = target.split("$")
        if scheme != "scrypt":
            return False
        expected = base64.b64decode(digest, validate=True)
        actual = hashlib.scrypt(
            secret[:_MAX_SECRET_LENGTH].encode(),
            salt=base64.b64decode(salt, validate=True),
            n=int(n), r=int(r), p=int(p), dklen=len(expected),
        )
    except (ValueError, TypeError):
        return False
    return encoded is not None and hmac.compare_digest(actual, expected)


def invalid_client() -> Unauthenticated:
    """The one answer to a wrong secret and to an unknown client alike."""
    return Unauthenticated("the client credentials are not valid", reason="INVALID_CLIENT")


def load_service_credentials(path: str) -> Mapping[str, Client]:
    """The service identities of ``SERVICE_CREDENTIALS_FILE``: one ``<id> <secret>``
    a line (the secret itself, or its ``scrypt$...`` hash), ``#`` comments and
    blank lines ignored. An empty path: none. A malformed file is a ``SettingsError``."""
    if not path:
        return {}
    file = Path(path)
    if not file.is_file():
        raise SettingsError(f"SERVICE_CREDENTIALS_FILE={path!r}: no such file")
    services: dict[str, Client] = {}
    for number, raw in enumerate(file.read_text().splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split()
        if len(parts) != 2 or not is_client_id(parts[0]):
            raise SettingsError(
                f"SERVICE_CREDENTIALS_FILE line {number}: expected '<service id> <secret>' "
                f"with the id {CLIENT_ID_RULE}"
            )
        client_id, secret = parts
        if is_subject_secret(secret):
            raise SettingsError(
                f"SERVICE_CREDENTIALS_FILE line {number}: a service's secret must not start with "
                f"{SUBJECT_SECRET_PREFIX!r} (subjects' secrets do)"
            )
        if client_id in services:
            raise SettingsError(f"SERVICE_CREDENTIALS_FILE line {number}: {client_id!r} given twice")
        stored = secret if secret.startswith("scrypt$") else hash_secret(secret)
        services[client_id] = Client(client_id, KIND_SERVICE, client_id, stored)
    return services


KINDS_REGISTERED = (KIND_PARTNER, KIND_PRODUCER)
__all__ += ["KINDS_REGISTERED"]
