"""Token keys by id: the verification key ring every service holds, and the file
it is read from (and re-read from, so that a signing key can be rotated without
a restart).

A key's id (``kid``) is its RFC 7638 JWK thumbprint: base64url, without padding,
of the SHA-256 of ``{"crv":"Ed25519","kty":"OKP","x":"<public key, base64url>"}``.
It follows from the key alone, so nobody names keys by hand and two files holding
the same key agree on its id. Every token the consent service signs names its key
in the JWT header's ``kid``.

A key ring file (``TOKEN_PUBLIC_KEY_FILE``) holds one or more PEM public keys, one
after the other (``-----BEGIN PUBLIC KEY-----`` blocks). During a rotation it holds
the old and the new key; see ``docs/deploy.md`` for the operator's steps and
``docs/security.md`` for the design.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import re
from collections.abc import Iterator, Mapping
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from ._config import SettingsError

__all__ = ["KeyRing", "KeyRingFile", "key_id"]

log = logging.getLogger("creditscore.runtime")

_PEM_BLOCK = re.compile(rb"-----BEGIN PUBLIC KEY-----.+?-----END PUBLIC KEY-----", re.DOTALL)


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def key_id(key: Ed25519PublicKey | Ed25519PrivateKey) -> str:
    """The RFC 7638 thumbprint of an Ed25519 key (of its public half)."""
    public = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    jwk = json.dumps({"crv": "Ed25519", "kty": "OKP", "x": _b64url(raw)}, separators=(",", ":"), sort_keys=True)
    return _b64url(hashlib.sha256(jwk.encode()).digest())


class KeyRing(Mapping[str, Ed25519PublicKey]):
    """Ed25519 public keys by key id: what a verifier accepts."""

    def __init__(self, keys: Mapping[str, Ed25519PublicKey]) -> None:
        if not keys:
            raise ValueError("a key ring needs at least one key")
        self._keys = dict(keys)

    @classmethod
    def of(cls, *keys: Ed25519PublicKey) -> KeyRing:
        return cls({key_id(k): k for k in keys})

    @classmethod
    def from_pem(cls, data: bytes | str) -> KeyRing:
        """Every PEM public key in ``data``; ``ValueError`` when there is none or one
        is not an Ed25519 public key."""
        raw = data.encode() if isinstance(data, str) else data
        blocks = _PEM_BLOCK.findall(raw)
        if not blocks:
            raise ValueError("no PEM public key (-----BEGIN PUBLIC KEY-----) found")
        keys: list[Ed25519PublicKey] = []
        for block in blocks:
            key = load_pem_public_key(block)
            if not isinstance(key, Ed25519PublicKey):
                raise ValueError("every token public key must be an Ed25519 key")
            keys.append(key)
        return cls.of(*keys)

    def merged(self, other: Mapping[str, Ed25519PublicKey]) -> KeyRing:
        return KeyRing({**self._keys, **other})

    def __getitem__(self, kid: str) -> Ed25519PublicKey:
        return self._keys[kid]

    def __iter__(self) -> Iterator[str]:
        return iter(self._keys)

    def __len__(self) -> int:
        return len(self._keys)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, KeyRing) and set(self._keys) == set(other._keys)

    def __hash__(self) -> int:
        return hash(frozenset(self._keys))

    def __repr__(self) -> str:
        return f"KeyRing({sorted(self._keys)})"


def _signature(path: Path) -> tuple[int, int, int] | None:
    try:
        st = os.stat(path)  # follows symlinks: a Kubernetes Secret volume swaps ..data
    except OSError:
        return None
    return (st.st_ino, st.st_mtime_ns, st.st_size)


class KeyRingFile:
    """A key ring read from a file, re-read by ``reload`` when the file changed.

    A file that cannot be read or parsed at start is a ``SettingsError``; later, a
    bad version is logged and the last good ring kept (a half-written file or an
    operator's mistake must not lock every caller out)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise SettingsError(f"TOKEN_PUBLIC_KEY_FILE={str(self.path)!r}: no such file")
        self._seen = _signature(self.path)
        try:
            self.ring = KeyRing.from_pem(self.path.read_bytes())
        except ValueError as exc:
            raise SettingsError(f"TOKEN_PUBLIC_KEY_FILE={str(self.path)!r}: {exc}") from None

    def reload(self) -> bool:
        """Re-reads the file if it changed; True when the ring changed."""
        seen = _signature(self.path)
        if seen == self._seen:
            return False
        self._seen = seen
        try:
            ring = KeyRing.from_pem(self.path.read_bytes())
        except (OSError, ValueError) as exc:
            log.error("token public keys %s: %s; keeping the keys %s", self.path, exc, sorted(self.ring))
            return False
        if ring == self.ring:
            return False
        log.info("token public keys %s changed: %s -> %s", self.path, sorted(self.ring), sorted(ring))
        self.ring = ring
        return True
