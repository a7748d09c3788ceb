"""Mutual TLS between services, from certificate files named in the environment.

    TLS_CERT_FILE            this service's certificate chain (PEM)
    TLS_KEY_FILE             its private key (PEM)
    TLS_CA_FILE              the CA certificate(s) that sign the peers' certificates (PEM)
    TLS_REQUIRE_CLIENT_AUTH  servers refuse a client without a certificate signed by
                             that CA (default true: *mutual* TLS)
    TLS_SERVER_NAME          the name a client expects in the server's certificate
                             when it is not the host of the target (optional)

None of them set: plaintext, as in the embedded default. Any of them set: a server
serves TLS only (``create_server``) and a client speaks TLS only (``create_channel``),
presenting its own certificate; a partial setting is a ``SettingsError`` at start,
never a silent fallback to plaintext.

One certificate serves a service both ways (server and client): give it both
``serverAuth`` and ``clientAuth`` extended key usages. A service's certificate
names the service in a URI subject alternative name
``spiffe://creditscore/service/<name>`` (a SPIFFE id): that is how a server tells a
service from any other holder of a certificate of the same CA (see ``_auth``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

from ._config import SettingsError, env_field

__all__ = ["SERVICE_SPIFFE_PREFIX", "TlsSettings", "service_name_of"]

#: A service's certificate carries ``spiffe://creditscore/service/<name>`` as a URI SAN.
SERVICE_SPIFFE_PREFIX = "spiffe://creditscore/service/"


@dataclass(frozen=True)
class TlsSettings:
    """Where the certificates are; empty: plaintext. ``TlsSettings()`` is off."""

    cert_file: str = env_field("TLS_CERT_FILE", "", help="this service's certificate chain (PEM)")
    key_file: str = env_field("TLS_KEY_FILE", "", help="this service's private key (PEM)")
    ca_file: str = env_field("TLS_CA_FILE", "", help="CA certificate(s) of the peers (PEM)")
    require_client_auth: bool = env_field(
        "TLS_REQUIRE_CLIENT_AUTH", True,
        help="servers refuse clients without a certificate of TLS_CA_FILE (mutual TLS)",
    )
    server_name: str = env_field(
        "TLS_SERVER_NAME", "", help="name expected in servers' certificates, if not the target host"
    )

    @property
    def enabled(self) -> bool:
        return bool(self.cert_file or self.key_file or self.ca_file)

    def check(self) -> None:
        """Raises ``SettingsError`` for a partial setting or an unreadable file."""
        if not self.enabled:
            return
        missing = [name for name, value in (
            ("TLS_CERT_FILE", self.cert_file), ("TLS_KEY_FILE", self.key_file),
            ("TLS_CA_FILE", self.ca_file)) if not value]
        if missing:
            raise SettingsError(
                "TLS is half configured: set TLS_CERT_FILE, TLS_KEY_FILE and TLS_CA_FILE "
                f"together (missing {', '.join(missing)})"
            )
        for name, path in (("TLS_CERT_FILE", self.cert_file), ("TLS_KEY_FILE", self.key_file),
                           ("TLS_CA_FILE", self.ca_file)):
            if not Path(path).is_file():
                raise SettingsError(f"{name}={path!r}: no such file")

    def _read(self) -> tuple[bytes, bytes, bytes]:
        self.check()
        return (Path(self.cert_file).read_bytes(), Path(self.key_file).read_bytes(),
                Path(self.ca_file).read_bytes())

    def server_credentials(self) -> grpc.ServerCredentials:
        """The server side: our certificate; clients' certificates checked against the
        CA, and required unless ``require_client_auth`` is false."""
        cert, key, ca = self._read()
        return grpc.ssl_server_credentials(
            [(key, cert)], root_certificates=ca, require_client_auth=self.require_client_auth
        )

    def channel_credentials(self) -> grpc.ChannelCredentials:
        """The client side: the server's certificate checked against the CA; ours presented."""
        cert, key, ca = self._read()
        return grpc.ssl_channel_credentials(root_certificates=ca, private_key=key, certificate_chain=cert)

    def channel_options(self) -> list[tuple[str, Any]]:
        if self.enabled and self.server_name:
            return [("grpc.ssl_target_name_override", self.server_name)]
        return []


def service_name_of(auth_context: Mapping[str, Iterable[bytes]]) -> str | None:
    """The service a peer's certificate names (its ``spiffe://creditscore/service/<name>``
    URI SAN), or None: no TLS, no client certificate, or not a service's certificate.
    Reads ``context.auth_context()`` of a call; gRPC fills it only with a certificate
    that chained to the server's CA."""
    if auth_context.get("transport_security_type") != [b"ssl"]:
        return None
    names = set()
    for value in (*auth_context.get("peer_spiffe_id", ()), *auth_context.get("peer_uri", ())):
        text = value.decode("utf-8", "replace")
        if text.startswith(SERVICE_SPIFFE_PREFIX) and len(text) > len(SERVICE_SPIFFE_PREFIX):
            names.add(text.removeprefix(SERVICE_SPIFFE_PREFIX))
    return names.pop() if len(names) == 1 else None
