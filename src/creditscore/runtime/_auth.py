"""Who is calling: bearer tokens verified once, here, for every service.

Tokens are JWTs signed with Ed25519 (``EdDSA``), issued only by the consent service
(which alone holds the private key); every other service verifies them with the
public key (``TOKEN_PUBLIC_KEY_FILE``). Claims::

    iss   "creditscore-consent"
    sub   the caller's id (partner id, producer id, service name, subject id)
    aud   "gateway" | "ingest" | "internal"   (the service(s) the token is for)
    kind  "partner" | "producer" | "service" | "subject"
    iat, exp, jti
    gen      the principal's credential generation when the token was issued (a
             subject's or a client's): revocations end every token of a lower one
    sources  (producers only) the DataSource enum names the producer may send

The JWT header names the signing key (``kid``, its RFC 7638 thumbprint: ``_keys``);
a verifier holds a ring of keys (old and new during a rotation).

A call carries its token in the metadata ``authorization: Bearer <token>``.

Server side::

    verifier = TokenVerifier(public_key_pem, AUDIENCE_INTERNAL)
    policy = {"/creditscore.feature.v1.FeatureService/ApplyRecords": {KIND_SERVICE}, ...}
    create_server(..., auth=AuthInterceptor(verifier, policy))
    # in a servicer:
    principal = current_principal()        # Principal(kind, id, sources, token_id)

Every method of the server must be in the policy: one that is not is refused
(PERMISSION_DENIED, ``METHOD_NOT_ALLOWED``), so a new RPC is closed until someone
decides who may call it. A method mapped to ``PUBLIC`` needs no token (the consent
service's ``IssueToken``); health and reflection are always open. The errors:

    no token                          UNAUTHENTICATED    TOKEN_MISSING
    bad signature, malformed, other   UNAUTHENTICATED    TOKEN_INVALID
      (an unknown or retired key too)
    expired                           UNAUTHENTICATED    TOKEN_EXPIRED
    revoked (``_revocation``)         UNAUTHENTICATED    TOKEN_REVOKED
    revocation list out of date       UNAVAILABLE        REVOCATIONS_STALE
    for another audience              UNAUTHENTICATED    TOKEN_WRONG_AUDIENCE
    kind not allowed / not in policy  PERMISSION_DENIED  METHOD_NOT_ALLOWED
    service token, no service cert    PERMISSION_DENIED  SERVICE_CERTIFICATE_REQUIRED
      (only where mutual TLS requires client certificates)

The messages never say which part of a token failed beyond the reason.

Service identity under mutual TLS: a caller whose token is of kind ``service`` must
also present a client certificate naming a service (URI SAN
``spiffe://creditscore/service/<name>``, see ``_tls``) whenever the server requires
client certificates; a stolen service token is useless from anywhere else.

Client side: ``TokenSource`` fetches a token (for a service: from the consent
service's ``IssueToken`` with the service's own credentials), caches it and fetches
the next one before it expires; ``create_channel(..., tokens=source)`` adds it to
every call through ``BearerTokenInterceptor``.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any, TypeGuard, cast

import grpc
import jwt

from ._config import SettingsError, env_field
from ._errors import DomainError, PermissionDenied, Unauthenticated, Unavailable
from ._handlers import Context, Continuation, Handler, streaming, unary, with_streaming, with_unary
from ._keys import KeyRing, KeyRingFile
from ._revocation import REVOKE_CLIENT, REVOKE_SUBJECT, Revocations
from ._tls import service_name_of

__all__ = [
    "AUDIENCES",
    "AUDIENCE_GATEWAY",
    "AUDIENCE_INGEST",
    "AUDIENCE_INTERNAL",
    "AUDIENCE_OF_KIND",
    "AUTH_MODES",
    "AuthInterceptor",
    "AuthSettings",
    "BearerTokenInterceptor",
    "ISSUER",
    "KINDS",
    "KIND_PARTNER",
    "KIND_PRODUCER",
    "KIND_SERVICE",
    "KIND_SUBJECT",
    "OPEN_SERVICES",
    "PUBLIC",
    "SUBJECT_SESSION_METADATA",
    "Principal",
    "SubjectSession",
    "TokenSource",
    "TokenVerifier",
    "current_principal",
    "server_auth",
    "subject_session",
    "subject_session_of",
    "token_expiry",
]

log = logging.getLogger("creditscore.runtime")

ISSUER = "creditscore-consent"
AUDIENCE_GATEWAY = "gateway"
AUDIENCE_INGEST = "ingest"
AUDIENCE_INTERNAL = "internal"
AUDIENCES = frozenset({AUDIENCE_GATEWAY, AUDIENCE_INGEST, AUDIENCE_INTERNAL})
KIND_PARTNER = "partner"
KIND_PRODUCER = "producer"
KIND_SERVICE = "service"
#: A scored person calling for themselves (the gateway's SubjectService); ``sub``
#: is the subject id.
KIND_SUBJECT = "subject"
KINDS = frozenset({KIND_PARTNER, KIND_PRODUCER, KIND_SERVICE, KIND_SUBJECT})
#: The audience the consent service issues each kind's tokens for.
AUDIENCE_OF_KIND = {
    KIND_PARTNER: AUDIENCE_GATEWAY,
    KIND_PRODUCER: AUDIENCE_INGEST,
    KIND_SERVICE: AUDIENCE_INTERNAL,
    KIND_SUBJECT: AUDIENCE_GATEWAY,
}
AUTH_MODES = ("required", "disabled")

#: A policy value meaning "no token needed" (``IssueToken``: the consent service's,
#: and the gateway's relay of it).
PUBLIC: frozenset[str] = frozenset({"*"})
#: Services open on every server: health and reflection.
OPEN_SERVICES = (
    "/grpc.health.v1.Health/",
    "/grpc.reflection.v1alpha.ServerReflection/",
    "/grpc.reflection.v1.ServerReflection/",
)

_ALGORITHMS = ["EdDSA"]
_REQUIRED_CLAIMS = ["iss", "sub", "aud", "iat", "exp", "jti"]
_MAX_TOKEN_CHARS = 8192
_CACHE_SIZE = 4096


@dataclass(frozen=True)
class Principal:
    """The authenticated caller: its kind, id (the token's ``sub``), for a producer the
    DataSource names it may send, the token's id (``jti``) and the credential
    generation it was issued under (``gen``; 0 for a token without one)."""

    kind: str
    id: str
    sources: frozenset[str] = frozenset()
    token_id: str = ""
    generation: int = 0


#: Call metadata with which a service acting for a subject (the gateway's
#: SubjectService) names the subject's token: ``<subject id> <generation> <token id>``.
#: The consent service checks it against the subject's enrollment at once.
SUBJECT_SESSION_METADATA = "creditscore-subject-session"


@dataclass(frozen=True)
class SubjectSession:
    """A subject's token as a service acting for the subject names it."""

    subject_id: str
    generation: int
    token_id: str


def subject_session(principal: Principal) -> tuple[tuple[str, str], ...]:
    """The metadata naming a subject's token, for calls made on its behalf."""
    return ((SUBJECT_SESSION_METADATA, f"{principal.id} {principal.generation} {principal.token_id}"),)


def subject_session_of(metadata: Any) -> SubjectSession | None:
    """The subject session a call names (None: the call is not made for a subject);
    ``TOKEN_INVALID`` when the value is malformed or repeated."""
    values = [v for k, v in (metadata or ()) if k == SUBJECT_SESSION_METADATA]
    if not values:
        return None
    parts = values[0].split(" ") if len(values) == 1 and isinstance(values[0], str) else []
    if len(parts) != 3 or not parts[0] or not parts[1].isdigit():
        raise _invalid()
    return SubjectSession(parts[0], int(parts[1]), parts[2])


_current: contextvars.ContextVar[Principal | None] = contextvars.ContextVar(
    "creditscore_principal", default=None
)


def current_principal() -> Principal | None:
    """The caller of the call being served; None where no ``AuthInterceptor`` runs
    (``AUTH_MODE=disabled``) or outside a call."""
    return _current.get()


def _invalid() -> Unauthenticated:
    return Unauthenticated("the token is not valid", reason="TOKEN_INVALID")


class TokenVerifier:
    """Verifies tokens for one audience (or a few: the ingest service takes
    producers' "ingest" and services' "internal") with the issuer's public keys
    (PEM, Ed25519; one key or a ``KeyRing``). A token's audience must also be the
    one its kind is issued for.

    ``verify`` picks the key the token's ``kid`` names (a token without one is
    tried against each key of the ring), checks the signature (EdDSA only;
    ``none`` and every other algorithm are refused), issuer, audience, expiry and
    the claims' shapes, then, with ``revocations``, that it is not revoked.
    ``leeway`` seconds of clock skew are tolerated on ``exp``/``iat``, read
    against ``clock``. Verified tokens are remembered (bounded) so that a caller
    reusing its token costs a dict lookup, an expiry and a revocation check, not a
    signature check. ``set_keys`` replaces the ring (a rotation) and forgets what
    was verified with the old one; ``key_file`` is re-read by ``reload_keys``."""

    def __init__(
        self,
        keys: bytes | str | KeyRing,
        audience: str | Collection[str],
        *,
        leeway: float = 5.0,
        clock: Callable[[], float] = time.time,
        revocations: Revocations | None = None,
        key_file: KeyRingFile | None = None,
    ) -> None:
        audiences = (audience,) if isinstance(audience, str) else tuple(audience)
        if not audiences or not set(audiences) <= AUDIENCES:
            raise ValueError(f"unknown audience {audience!r}; one or more of {sorted(AUDIENCES)}")
        ring = keys if isinstance(keys, KeyRing) else KeyRing.from_pem(keys)
        self._ring = ring
        self.audiences = frozenset(audiences)
        self._leeway = leeway
        self._clock = clock
        self.revocations = revocations
        self.key_file = key_file
        self._cache: dict[str, tuple[Principal, float]] = {}

    @property
    def keys(self) -> KeyRing:
        return self._ring

    def set_keys(self, ring: KeyRing) -> None:
        if ring != self._ring:
            self._ring = ring
            self._cache = {}

    def reload_keys(self) -> None:
        """Re-reads ``key_file`` if it changed (an ``AuthWatch`` tick)."""
        if self.key_file is not None and self.key_file.reload():
            self.set_keys(self.key_file.ring)

    def _check_revoked(self, principal: Principal) -> None:
        if self.revocations is not None:
            self.revocations.check(
                principal.token_id,
                REVOKE_SUBJECT if principal.kind == KIND_SUBJECT else REVOKE_CLIENT,
                principal.id,
                principal.generation,
            )

    def verify(self, token: str) -> Principal:
        """The caller the token names; ``Unauthenticated`` (``TOKEN_INVALID``,
        ``TOKEN_EXPIRED``, ``TOKEN_WRONG_AUDIENCE`` or ``TOKEN_REVOKED``) otherwise,
        or ``Unavailable`` (``REVOCATIONS_STALE``)."""
        now = self._clock()
        hit = self._cache.get(token)
        if hit is not None:
            principal, expires = hit
            if now <= expires + self._leeway:
                self._check_revoked(principal)
                return principal
            del self._cache[token]
            raise Unauthenticated("the token has expired", reason="TOKEN_EXPIRED")
        if not token or len(token) > _MAX_TOKEN_CHARS:
            raise _invalid()
        claims = self._decode(token)
        principal = _principal(claims)
        if claims.get("aud") != AUDIENCE_OF_KIND[principal.kind]:
            # Each kind's tokens are issued for one audience only: anything else
            # was not issued by the consent service.
            raise _invalid()
        iat, exp = claims.get("iat"), claims["exp"]
        if not _is_number(exp) or not _is_number(iat) or iat > now + self._leeway:
            raise _invalid()
        if now > exp + self._leeway:
            raise Unauthenticated("the token has expired", reason="TOKEN_EXPIRED")
        self._check_revoked(principal)
        if len(self._cache) >= _CACHE_SIZE:
            self._cache.clear()
        self._cache[token] = (principal, float(exp))
        return principal

    def _decode(self, token: str) -> dict[str, Any]:
        try:
            kid = jwt.get_unverified_header(token).get("kid")
        except (jwt.PyJWTError, ValueError, TypeError, AttributeError):
            raise _invalid() from None
        if kid is None:
            candidates = list(self._ring.values())  # a token from before key ids
        elif isinstance(kid, str) and kid in self._ring:
            candidates = [self._ring[kid]]
        else:
            raise _invalid()  # an unknown or retired key
        for i, key in enumerate(candidates):
            try:
                # Signature first (PyJWT checks it before any claim), so a forged
                # token never gets an answer about its claims.
                claims: dict[str, Any] = jwt.decode(
                    token,
                    key,
                    algorithms=_ALGORITHMS,
                    audience=list(self.audiences),
                    issuer=ISSUER,
                    # Times are checked by the caller against this verifier's clock.
                    options={"require": _REQUIRED_CLAIMS, "verify_iat": False, "verify_exp": False},
                )
                return claims
            except jwt.InvalidSignatureError:
                if i + 1 < len(candidates):
                    continue
                raise _invalid() from None
            except jwt.InvalidAudienceError:
                raise Unauthenticated(
                    "the token is not meant for this service", reason="TOKEN_WRONG_AUDIENCE"
                ) from None
            except (jwt.PyJWTError, ValueError, TypeError):
                raise _invalid() from None
        raise _invalid()


def _is_number(value: object) -> TypeGuard[int | float]:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _principal(claims: Mapping[str, Any]) -> Principal:
    kind, sub, jti = claims.get("kind"), claims.get("sub"), claims.get("jti")
    if kind not in KINDS or not isinstance(sub, str) or not sub or not isinstance(jti, str):
        raise _invalid()
    sources: frozenset[str] = frozenset()
    if kind == KIND_PRODUCER:
        raw = claims.get("sources", [])
        if not isinstance(raw, list) or not all(isinstance(s, str) for s in raw):
            raise _invalid()
        sources = frozenset(raw)
    generation = claims.get("gen", 0)
    if not isinstance(generation, int) or isinstance(generation, bool) or generation < 0:
        raise _invalid()
    return Principal(kind=kind, id=sub, sources=sources, token_id=jti, generation=generation)


def token_expiry(token: str) -> float | None:
    """The ``exp`` of a token, read without verifying it (a client's own token, to
    know when to fetch the next); None when it has none or is not a JWT."""
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        return None
    exp = claims.get("exp")
    return float(exp) if _is_number(exp) else None


def _bearer(metadata: Any) -> str | None:
    """The token of ``authorization: Bearer <token>``; "" for a malformed or repeated
    header; None when there is none."""
    values = [v for k, v in (metadata or ()) if k == "authorization"]
    if not values:
        return None
    if len(values) > 1 or not isinstance(values[0], str):
        return ""
    scheme, _, token = values[0].strip().partition(" ")
    if scheme.lower() != "bearer":
        return ""
    return token.strip()


class AuthInterceptor(grpc.aio.ServerInterceptor):
    """Authenticates every call but health, reflection and ``PUBLIC`` methods, and
    lets it through only when the policy allows the caller's kind for the method.
    The principal is readable in the servicer through ``current_principal()``.

    ``policy`` maps a full method name (``/package.Service/Method``) to the kinds
    allowed (or ``PUBLIC``). With ``service_certificates`` (``create_server`` turns it
    on where mutual TLS requires client certificates), a caller of kind ``service``
    must also present a service's certificate.

    Put it after the ``ErrorInterceptor`` (``create_server(auth=...)`` does): it
    raises domain errors."""

    def __init__(
        self,
        verifier: TokenVerifier,
        policy: Mapping[str, Collection[str]],
        *,
        service_certificates: bool = False,
    ) -> None:
        for method, kinds in policy.items():
            if not method.startswith("/") or method.count("/") != 2:
                raise ValueError(f"policy: {method!r} is not a full method name (/pkg.Service/Method)")
            if kinds != PUBLIC and not set(kinds) <= KINDS:
                raise ValueError(f"policy: {method}: unknown kinds {sorted(set(kinds) - KINDS)}")
        self.verifier = verifier
        self.policy = {m: frozenset(k) for m, k in policy.items()}
        self.service_certificates = service_certificates

    def requiring_service_certificates(self) -> AuthInterceptor:
        return AuthInterceptor(self.verifier, self.policy, service_certificates=True)

    def authenticate(self, method: str, metadata: Any, context: Context | None) -> Principal:
        """The caller of ``method``, or the domain error that refuses it."""
        kinds = self.policy.get(method)
        if kinds is None:
            raise PermissionDenied("this method may not be called", reason="METHOD_NOT_ALLOWED")
        token = _bearer(metadata)
        if token is None:
            raise Unauthenticated(
                "a token is required: metadata 'authorization: Bearer <token>'", reason="TOKEN_MISSING"
            )
        principal = self.verifier.verify(token)
        if principal.kind not in kinds:
            raise PermissionDenied("this caller may not call this method", reason="METHOD_NOT_ALLOWED")
        if principal.kind == KIND_SERVICE and self.service_certificates:
            peer = context.auth_context() if context is not None else {}
            if service_name_of(peer) is None:
                raise PermissionDenied(
                    "a service must call with a service's certificate",
                    reason="SERVICE_CERTIFICATE_REQUIRED",
                )
        return principal

    async def intercept_service(
        self, continuation: Continuation, handler_call_details: grpc.HandlerCallDetails
    ) -> Handler | None:
        handler = await continuation(handler_call_details)
        method = handler_call_details.method
        if handler is None or method.startswith(OPEN_SERVICES) or self.policy.get(method) == PUBLIC:
            return handler
        metadata = handler_call_details.invocation_metadata
        authenticate = self.authenticate

        inner = unary(handler)
        if inner is not None:

            async def unary_response(request: Any, context: Context) -> Any:
                reset = _current.set(authenticate(method, metadata, context))
                try:
                    return await inner(request, context)
                finally:
                    _current.reset(reset)

            return with_unary(handler, unary_response)

        inner_stream = streaming(handler)

        async def stream_response(request: Any, context: Context) -> AsyncIterator[Any]:
            principal = authenticate(method, metadata, context)
            reset = _current.set(principal)
            try:
                async for item in cast("AsyncIterator[Any]", inner_stream(request, context)):
                    yield item
            finally:
                # A generator closed from elsewhere runs this in another context.
                with contextlib.suppress(ValueError):
                    _current.reset(reset)

        return with_streaming(handler, stream_response)


# --- settings ----------------------------------------------------------------


@dataclass(frozen=True)
class AuthSettings:
    """How a service authenticates its callers and itself.

    ``AUTH_MODE=required`` (the default) verifies every call with the public key in
    ``TOKEN_PUBLIC_KEY_FILE``; ``disabled`` lets every call through unauthenticated
    and is for tests of unrelated behaviour only (a service started so logs a loud
    warning). ``SERVICE_CLIENT_ID`` / ``SERVICE_CLIENT_SECRET`` are the credentials a
    service presents to the consent service's ``IssueToken`` for its own tokens
    (the calls it makes to other services)."""

    mode: str = env_field("AUTH_MODE", "required", help="required | disabled (tests only)")
    public_key_file: str = env_field(
        "TOKEN_PUBLIC_KEY_FILE", "", help="PEM of the consent service's Ed25519 token key"
    )
    client_id: str = env_field(
        "SERVICE_CLIENT_ID", "", help="this service's id for IssueToken (its own tokens)"
    )
    client_secret: str = env_field(
        "SERVICE_CLIENT_SECRET", "", help="this service's secret for IssueToken"
    )
    leeway_seconds: float = env_field(
        "TOKEN_LEEWAY_SECONDS", 5.0, help="clock skew tolerated on a token's expiry"
    )
    revocation_poll_seconds: float = env_field(
        "REVOCATION_POLL_SECONDS", 1.0,
        help="how often the revocation list is fetched from the consent service (a revocation "
        "takes effect within about this)",
    )
    revocation_max_staleness_seconds: float = env_field(
        "REVOCATION_MAX_STALENESS_SECONDS", 30.0,
        help="every token is refused (UNAVAILABLE) while the revocation list is older than this",
    )

    @property
    def required(self) -> bool:
        return self.mode == "required"

    def check(self) -> None:
        if self.mode not in AUTH_MODES:
            raise SettingsError(f"AUTH_MODE={self.mode!r}: expected one of {', '.join(AUTH_MODES)}")
        if self.revocation_poll_seconds <= 0 or self.revocation_max_staleness_seconds <= 0:
            raise SettingsError("REVOCATION_POLL_SECONDS and REVOCATION_MAX_STALENESS_SECONDS must be positive")
        if self.revocation_max_staleness_seconds < 2 * self.revocation_poll_seconds:
            raise SettingsError(
                "REVOCATION_MAX_STALENESS_SECONDS must be at least twice REVOCATION_POLL_SECONDS "
                "(one failed poll must not refuse every token)"
            )

    def public_key(self) -> bytes:
        return self.key_file().path.read_bytes()

    def key_file(self) -> KeyRingFile:
        """The verification keys (``TOKEN_PUBLIC_KEY_FILE``: one PEM public key, or
        several during a rotation), re-readable."""
        self.check()
        if not self.public_key_file:
            raise SettingsError(
                "AUTH_MODE=required needs TOKEN_PUBLIC_KEY_FILE (the consent service's public key)"
            )
        return KeyRingFile(self.public_key_file)

    def revocations(self) -> Revocations:
        return Revocations(max_staleness=self.revocation_max_staleness_seconds)


def warn_disabled(service: str) -> None:
    """The loud warning of a service started with ``AUTH_MODE=disabled``."""
    log.warning(
        "AUTH_MODE=disabled: %s answers EVERY caller without a token. This mode is for "
        "tests of unrelated behaviour only; never run it where anyone else can reach it.",
        service,
    )


def server_auth(
    settings: AuthSettings,
    audience: str | Collection[str],
    policy: Mapping[str, Collection[str]],
    *,
    service: str,
    keys: bytes | str | KeyRing | None = None,
    revocations: Revocations | None = None,
) -> AuthInterceptor | None:
    """The interceptor a service's ``build_server`` hands to ``create_server``: None
    (with the loud warning) when auth is disabled; ``SettingsError`` when it is
    required and the public key is missing. Its verifier re-reads the key file
    and checks revocations, both kept current by the ``AuthWatch`` that
    ``keep_tokens_current`` attaches to the server.

    ``keys`` and ``revocations`` are for the service that issues the tokens (the
    consent service): it verifies with its own keys (then no key file is read,
    and its ``SigningKeys`` keeps the verifier's ring current) and a revocation
    list it fills itself (default: a new one, ``settings.revocations()``)."""
    settings.check()
    if not settings.required:
        warn_disabled(service)
        return None
    key_file: KeyRingFile | None = None
    if keys is None:
        key_file = settings.key_file()
        keys = key_file.ring
    verifier = TokenVerifier(
        keys, audience, leeway=settings.leeway_seconds,
        revocations=settings.revocations() if revocations is None else revocations, key_file=key_file,
    )
    return AuthInterceptor(verifier, policy)


# --- client side ---------------------------------------------------------------


class TokenSource:
    """A token to call with, fetched by ``fetch`` and cached until it nears expiry.

    ``fetch`` returns a fresh token (a service's: ``IssueToken`` with its own
    credentials). The token is fetched again once less than ``refresh_margin``
    seconds (at most a third of its lifetime) are left, by one caller at a time; if
    that fetch fails while the cached token is still valid, the cached one is used.
    A failure with no valid token is ``Unavailable`` (``TOKEN_UNAVAILABLE``) unless
    ``fetch`` raised a domain error of its own. ``TokenSource.static(token)`` always
    gives the same token (a partner's or a test's)."""

    def __init__(
        self,
        fetch: Callable[[], Awaitable[str]],
        *,
        refresh_margin: float = 60.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._fetch = fetch
        self._margin = refresh_margin
        self._clock = clock
        self._token: str | None = None
        self._expires = 0.0
        self._refresh_at = 0.0
        self._lock = asyncio.Lock()

    @classmethod
    def static(cls, token: str) -> TokenSource:
        async def fetch() -> str:
            return token

        source = cls(fetch)
        source._token, source._expires, source._refresh_at = token, float("inf"), float("inf")
        return source

    def invalidate(self) -> None:
        """Forget the cached token (the server refused it): the next call fetches."""
        if self._refresh_at != float("inf"):
            self._refresh_at = 0.0

    async def token(self) -> str:
        now = self._clock()
        if self._token is not None and now < self._refresh_at:
            return self._token
        async with self._lock:
            now = self._clock()
            if self._token is not None and now < self._refresh_at:
                return self._token
            try:
                token = await self._fetch()
            except Exception as exc:  # noqa: BLE001 - a still valid token is used
                if self._token is not None and now < self._expires:
                    log.warning("could not refresh the service token (%s); using the cached one", exc)
                    return self._token
                if isinstance(exc, DomainError):
                    raise
                raise Unavailable(
                    "could not obtain a token for this call", reason="TOKEN_UNAVAILABLE"
                ) from exc
            issued = self._clock()
            expires = token_expiry(token) or issued + self._margin
            lifetime = max(0.0, expires - issued)
            self._token, self._expires = token, expires
            self._refresh_at = expires - min(self._margin, lifetime / 3)
            return token


class BearerTokenInterceptor(
    grpc.aio.UnaryUnaryClientInterceptor,
    grpc.aio.UnaryStreamClientInterceptor,
    grpc.aio.StreamUnaryClientInterceptor,
    grpc.aio.StreamStreamClientInterceptor,
):
    """Adds ``authorization: Bearer <token>`` from a ``TokenSource`` to every call
    that does not carry one already; a call refused as UNAUTHENTICATED makes the
    source fetch a new token next time. (``create_channel`` files it once per kind of
    call: see ``_per_call_kind``.)"""

    def __init__(self, source: TokenSource) -> None:
        self._source = source
        self._pending: set[asyncio.Task[None]] = set()

    async def _details(self, details: grpc.aio.ClientCallDetails) -> grpc.aio.ClientCallDetails:
        if any(k == "authorization" for k, _ in (details.metadata or ())):
            return details  # a token given with the call itself wins
        token = await self._source.token()
        metadata = grpc.aio.Metadata(*(details.metadata or ()))
        metadata.add("authorization", f"Bearer {token}")
        return grpc.aio.ClientCallDetails(
            details.method, details.timeout, metadata, details.credentials, details.wait_for_ready
        )

    def _watch(self, call: Any) -> Any:
        source = self._source

        async def check(finished: Any) -> None:
            with contextlib.suppress(Exception):  # a cancelled call: nothing to learn
                if await finished.code() == grpc.StatusCode.UNAUTHENTICATED:
                    source.invalidate()

        def done(finished: Any) -> None:
            task = asyncio.get_running_loop().create_task(check(finished))
            self._pending.add(task)
            task.add_done_callback(self._pending.discard)

        if hasattr(call, "add_done_callback"):
            call.add_done_callback(done)
        return call

    async def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        return self._watch(await continuation(await self._details(details), request))

    async def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
        return self._watch(await continuation(await self._details(details), request))

    async def intercept_stream_unary(self, continuation: Any, details: Any, requests: Any) -> Any:
        return self._watch(await continuation(await self._details(details), requests))

    async def intercept_stream_stream(self, continuation: Any, details: Any, requests: Any) -> Any:
        return self._watch(await continuation(await self._details(details), requests))


__all__ += ["warn_disabled"]
